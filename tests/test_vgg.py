"""The VGG builder: exact VGG16 topology and parameter count, preprocessing baked in exactly."""

from __future__ import annotations

import numpy as np
import pytest

from vggedge.backend.keras_env import keras
from vggedge.models.vgg import VGGSpec, build_vgg16, preprocessing_layer, with_preprocessing


def test_full_size_vgg16_has_the_published_parameter_count():
    model = build_vgg16(VGGSpec(preprocess="none"))
    assert model.count_params() == 138_357_544  # Keras Applications' VGG16
    conv = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(conv) == 13 and conv[0] == "block1_conv1" and conv[-1] == "block5_conv3"
    assert [layer.name for layer in model.layers[-4:]] == ["flatten", "fc1", "fc2", "predictions"]


def test_spec_is_validated():
    with pytest.raises(ValueError, match="Received: 16"):
        VGGSpec(input_size=16)
    with pytest.raises(ValueError, match="width"):
        VGGSpec(width=0)


def test_caffe_layer_matches_keras_preprocess_input(rng):
    pixels = rng.integers(0, 256, size=(2, 8, 8, 3)).astype(np.float32)
    expected = keras.applications.vgg16.preprocess_input(pixels.copy())
    layer = preprocessing_layer("caffe")
    np.testing.assert_allclose(layer(pixels).numpy(), expected, atol=1e-4)


def test_with_preprocessing_keeps_layer_names_flat():
    inner = build_vgg16(VGGSpec(input_size=32, classes=3, width=1 / 16, dense_units=8, preprocess="none"))
    outer = with_preprocessing(inner, "unit")
    assert outer.layers[1].name == "preprocess"
    assert outer.get_layer("fc1") is not inner.get_layer("fc1")  # copied: one graph per layer
    np.testing.assert_array_equal(outer.get_layer("fc1").kernel.numpy(), inner.get_layer("fc1").kernel.numpy())
    assert all(len(layer._inbound_nodes) == 1 for layer in outer.layers[1:])
    x = np.full((1, 32, 32, 3), 255.0, np.float32)
    np.testing.assert_allclose(outer(x).numpy(), inner(x / 255.0).numpy(), atol=1e-6)
