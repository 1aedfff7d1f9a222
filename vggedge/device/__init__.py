"""The device side: what a Raspberry Pi runs, with no TensorFlow.

The interpreter (ai-edge-litert or tflite-runtime), timing and accuracy of TFLite files, the board check,
``vggedge bench`` (one or many models, ``--serve``, ``--profile``), the latency table and ``Classifier``.
It imports only :mod:`vggedge.core`; the contracts in ``pyproject.toml`` (``lint-imports``) and
``tests/test_device_package.py`` (every module imported where TensorFlow cannot be) keep it so.
"""
