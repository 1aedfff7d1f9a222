"""The Keras boundary: vggedge always runs on Keras 2 (tf_keras), chosen before TensorFlow loads."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_tf_keras_is_legacy_keras_2():
    from vggedge.backend.keras_env import keras, tf

    assert keras.__version__.startswith("2.")
    assert tf.keras.__name__.startswith("tf_keras")


@pytest.mark.slow  # tfmot wraps a model: seconds, not the edit-test loop's
def test_tfmot_accepts_our_models():
    from vggedge.backend.keras_env import keras, tfmot

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
    pruned = tfmot().sparsity.keras.prune_low_magnitude(model)
    assert any("prune_low_magnitude" in layer.name for layer in pruned.layers)


@pytest.mark.slow  # a fresh process that imports TensorFlow
def test_importing_tensorflow_first_is_refused_with_a_clear_message():
    code = "import os; os.environ.pop('TF_USE_LEGACY_KERAS', None); import tensorflow; import vggedge.backend.keras_env"
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_USE_LEGACY_KERAS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode != 0
    assert "must choose the Keras version before TensorFlow is imported" in done.stderr
