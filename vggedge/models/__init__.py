"""Keras models: VGG16 as data, loading a user's file, reading its anatomy, the offline sample, FLOPs."""
