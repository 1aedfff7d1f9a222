"""The one place where vggedge imports TensorFlow and chooses its Keras.

tensorflow-model-optimization (pruning, QAT) only works with legacy Keras 2 (``tf_keras``), while
TensorFlow 2.21 defaults ``tf.keras`` to Keras 3. The choice has to be made before TensorFlow is
first imported, so every module that needs TensorFlow or Keras imports them from here and nowhere
else. Internally vggedge builds and transforms models with Keras 2 only; Keras 3 model files are
translated to Keras 2 on load (see :mod:`vggedge.models.translate`).

The device side (``vggedge bench``) never imports this module: it must run without TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    # TensorFlow already chose Keras 3 for tf.keras; tfmot would fail later with an obscure error.
    raise ImportError(
        "vggedge must choose the Keras version before TensorFlow is imported: "
        "import vggedge before tensorflow, or set TF_USE_LEGACY_KERAS=1"
    )
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault(
    "TF_CPP_MIN_LOG_LEVEL", "3"
)  # keep TensorFlow's C++ start-up chatter (no-GPU notices) off the terminal
# With oneDNN on (TensorFlow's default on x86), tensors come from a pooling allocator that never
# gives memory back: building the full-size VGG16 left 2.0 GB resident instead of 1.15 GB, and every
# later phase (conversion, verification) stacked on top. The system allocator returns what is freed.
os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "true")

from vggedge.core.quiet import native_stderr_silenced  # noqa: E402

# TensorFlow's import writes absl's and CUDA's start-up lines straight to descriptor 2, past TF_CPP_MIN_LOG_LEVEL
# ("All log messages before absl::InitializeLog() ...", "Could not find cuda drivers"): a notebook user of the API
# saw them twice. Held for the import only (VGGEDGE_VERBOSE=1 shows them); an import error is still raised and said.
with (
    contextlib.nullcontext()
    if os.environ.get("VGGEDGE_VERBOSE", "").lower() in ("1", "true", "yes")
    else native_stderr_silenced()
):
    import tensorflow as tf
    import tf_keras as keras

tf.get_logger().setLevel("ERROR")
# Advice aimed at other workflows (HDF5 is "legacy", converter statistics notes): not the user's business.
warnings.filterwarnings("ignore", category=UserWarning, module=r"(tf_keras|tensorflow)\.")


def tfmot():  # noqa: ANN201 - module object
    """Import tensorflow-model-optimization lazily: it is slow to import and only pruning/QAT need it."""
    import tensorflow_model_optimization as tfmot_module

    return tfmot_module


def best_device() -> str:
    """The device TensorFlow will place the Keras baseline on: the first GPU if any, else the CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU:0 ({details.get('device_name', 'unknown')})"
    return "CPU"


__all__ = ["tf", "keras", "tfmot", "best_device"]
