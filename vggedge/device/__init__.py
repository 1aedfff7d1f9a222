"""The device side: everything a Raspberry Pi runs, with no TensorFlow.

numpy, pillow, rich and ai-edge-litert (or tflite-runtime) only. Nothing under this package may import
TensorFlow, Keras or the workstation modules (``pipeline``, ``convert``, ``models``, ``steps``…);
``tests/test_device_package.py`` imports every module here in a process where TensorFlow cannot be imported.
The shared, TensorFlow-free modules it builds on (``report``, ``metrics``, ``data``, ``progress``, ``atomic``,
``errors``) stay at the top of ``vggedge``, because the workstation writes the same reports.
"""
