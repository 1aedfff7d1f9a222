"""Python code that makes a process a Raspberry Pi as far as imports go: TensorFlow and Keras are not there.

Prepended to the code a test runs with ``python -c`` (the device-side commands, the device package's imports,
the Classifier API), so each proves it works without TensorFlow, not merely that it did not happen to import it.
"""

import textwrap

BLOCK_TENSORFLOW = textwrap.dedent(
    """
    import sys

    class NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization"):
                raise ImportError("No module named " + repr(name) + " (blocked by the test)")

    sys.meta_path.insert(0, NoTensorFlow())
    """
)
# Appended after the work: nothing of TensorFlow was imported some other way.
ASSERT_NO_TENSORFLOW = (
    "leaked = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')]\n"
    "assert not leaked, leaked\n"
)
