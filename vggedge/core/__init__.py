"""The TensorFlow-free core: what both sides of vggedge build on.

Errors, defaults, atomic writes, progress, the quantization modes, layer selectors, image folders and the one
decoding rule, class names, metrics and statistics, and the typed report. numpy, Pillow and rich only: the
device side (:mod:`vggedge.device`) imports nothing else of vggedge (``lint-imports`` enforces it).
"""
