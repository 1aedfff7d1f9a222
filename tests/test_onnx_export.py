"""The ONNX writer (vggedge.export.onnx): the graph it writes answers as the Keras model
it came from, on every model form and on vggedge's own VGG16 (caffe preprocessing baked in)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def writer():  # noqa: ANN201
    from vggedge.export import onnx

    return onnx


def pixels(size: int, count: int = 3) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(count, size, size, 3)).astype(np.float32)


def with_moving_statistics(model, seed: int = 0):  # noqa: ANN001, ANN201
    """Give every BatchNormalization layer statistics other than its (0, 1) start, so the test can see them."""
    from vggedge.models.anatomy import leaf_layers

    rng = np.random.default_rng(seed)
    for layer, _ in leaf_layers(model):
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape),
                    rng.normal(0, 0.1, beta.shape),
                    rng.normal(0, 0.1, mean.shape),
                    rng.uniform(0.5, 2.0, variance.shape),
                ]
            )
    return model


@pytest.mark.parametrize("form", ["sequential_autonamed", "gap_dense_functional", "nested_frozen", "batch_norm"])
def test_the_onnx_graph_answers_as_each_form(writer, form, tmp_path):
    import keras

    from forms import FORMS

    keras.utils.set_random_seed(0)
    model = with_moving_statistics(FORMS[form][0]())
    path = tmp_path / "model.onnx"
    writer.keras_to_onnx(model, path)
    images = pixels(int(model.input_shape[1]))
    assert writer.largest_difference(path, model, images) <= 1e-4


def test_the_onnx_graph_of_vggedges_vgg16_bakes_in_the_caffe_preprocessing(writer, tmp_path):
    import onnxruntime as ort

    from vggedge.backend.keras_env import keras
    from vggedge.models.vgg import VGGSpec, build_vgg16

    keras.utils.set_random_seed(0)
    model = build_vgg16(VGGSpec(input_size=64, classes=10, width=0.25, dense_units=64, preprocess="caffe"))
    path = tmp_path / "model.onnx"
    writer.keras_to_onnx(model, path)
    images = pixels(64)  # 2x2 after the five poolings: the flatten order shows
    assert writer.largest_difference(path, model, images) <= 1e-4
    # The comparison can fail: the graph fed the same pixels in BGR order answers otherwise than the model.
    flipped = ort.InferenceSession(str(path)).run(None, {"pixels": images[:1, ..., ::-1].copy()})[0]
    keras_scores = np.asarray(model(images[:1]))
    assert np.abs(flipped - keras_scores).max() > 1e-3 * np.abs(keras_scores).max()


def test_a_layer_without_a_translation_stops_the_export_by_name(writer, tmp_path):
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, name="strided")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    with pytest.raises(writer.UnsupportedLayer, match="strided"):
        writer.keras_to_onnx(model, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()
