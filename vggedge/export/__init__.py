"""Keras to TFLite: conversion in every quantization mode, cross-layer equalization, the int8 error per layer,
float fallback of the worst layers, and the standard TFLite metadata written into every model."""
