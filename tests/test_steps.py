"""Recipe steps applied directly to small models: what each one changes, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import record_figure
from vggedge.backend.keras_env import keras
from vggedge.core.errors import UserError
from vggedge.models.anatomy import find_anatomy
from vggedge.models.vgg import VGGSpec, build_vgg16
from vggedge.recipe.schema import HeadStep, PruneStep
from vggedge.steps import StepContext, apply_step
from vggedge.steps.head import ridge_fit

pytestmark = pytest.mark.slow


def small_model(classes: int = 10):  # noqa: ANN201
    return build_vgg16(VGGSpec(input_size=32, classes=classes, width=1 / 16, dense_units=64, preprocess="unit"))


def context(digits, labels: bool = True) -> StepContext:  # noqa: ANN001
    return StepContext(digits.train.first(256), digits.train.labels[:256] if labels else None, progress=False)


def test_prune_reaches_the_target_on_a_short_fine_tune(digits):
    # 256 images / 32 = 8 steps per epoch: tfmot's default frequency (100) would never prune at all.
    model = small_model()
    before = model.get_layer("fc1").kernel.numpy().copy()
    result = apply_step(PruneStep(sparsity=0.75, layers="dense", epochs=1), model, context(digits))
    assert all(0.74 <= s <= 0.76 for s in result.record["layer_sparsity"].values())
    assert not any("prune_low_magnitude" in layer.name for layer in result.model.layers)  # stripped
    np.testing.assert_array_equal(model.get_layer("fc1").kernel.numpy(), before)  # the source is untouched
    assert np.mean(result.model.get_layer("block1_conv1").kernel.numpy() == 0) < 0.01  # conv layers left alone


def test_layer_selection_by_anatomy():
    anatomy = find_anatomy(small_model())
    assert anatomy.select("dense") == ["fc1", "fc2"]  # the output layer stays whole
    assert len(anatomy.select("conv")) == 13 and "preprocess" not in anatomy.select("all")
    assert (
        anatomy.select("block5") == anatomy.select("name:block5_.*") == ["block5_conv1", "block5_conv2", "block5_conv3"]
    )
    assert anatomy.select("block2-3") == [
        "block2_conv1",
        "block2_conv2",
        "block3_conv1",
        "block3_conv2",
        "block3_conv3",
    ]
    assert anatomy.select("head") == ["fc1", "fc2", "predictions"]
    with pytest.raises(UserError, match="selects no layer"):
        anatomy.select("name:nothing_matches")
    with pytest.raises(UserError, match="selects no layer"):
        anatomy.select("block6")


def test_head_swap_by_distillation_without_labels(tiny, digits):
    model, _ = tiny
    result = apply_step(HeadStep(train="distill", epochs=5), model, context(digits, labels=False))
    swapped = result.model
    names = [layer.name for layer in swapped.layers]
    assert "flatten" not in names and "fc1" not in names and names[-2:] == ["gap", "predictions"]
    assert swapped.output_shape == (None, 10)
    assert swapped.get_layer("predictions").kernel.shape == (128, 10)  # channels x classes
    record_figure("head distill: train agreement", result.record["train_agreement_with_source"])
    assert result.record["train"] == "distill" and result.record["train_agreement_with_source"] >= 0.8
    assert model.get_layer("fc1") is not None  # the source model keeps its head


def test_head_swap_training_free_start_imitates_the_old_head(tiny, digits):
    model, _ = tiny
    result = apply_step(HeadStep(epochs=0, init="lstsq"), model, context(digits, labels=False))
    assert result.record["train"] == "none"
    images = digits.eval.images[:200]
    agree = np.mean(
        np.argmax(result.model.predict(images, verbose=0), 1) == np.argmax(model.predict(images, verbose=0), 1)
    )
    record_figure("head lstsq: eval agreement", agree)
    assert agree >= 0.7


def test_head_swap_refuses_a_model_without_a_dense_head():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    with pytest.raises(UserError, match="already global pooling -> one Dense"):
        apply_step(HeadStep(), keras.Model(inputs, outputs), StepContext(np.zeros((2, 32, 32, 3), np.uint8), None))


def test_ridge_fit_recovers_a_linear_map(rng):
    features = rng.normal(size=(200, 8)).astype(np.float32)
    kernel = rng.normal(size=(8, 3)).astype(np.float32)
    fitted_kernel, fitted_bias = ridge_fit(features, features @ kernel + 0.5, strength=1e-8)
    np.testing.assert_allclose(fitted_kernel, kernel, atol=1e-3)
    np.testing.assert_allclose(fitted_bias, 0.5, atol=1e-3)


def test_structural_steps_work_on_a_model_with_preprocessing_prepended():
    """Keras' ImageNet VGG16 arrives without preprocessing; the caffe layer is prepended. Regression:
    re-applied (shared) layers made `flatten.input` belong to the original graph ("Graph disconnected")."""
    from vggedge.models.vgg import with_preprocessing
    from vggedge.recipe.schema import FilterPruneStep

    model = with_preprocessing(
        build_vgg16(VGGSpec(input_size=64, classes=1000, width=1 / 16, dense_units=16, preprocess="none")), "caffe"
    )
    synthetic = StepContext.synthetic_for(64, progress=False)
    assert synthetic.synthetic
    swapped = apply_step(HeadStep(), model, synthetic).model
    assert swapped.output_shape == (None, 1000) and swapped.layers[1].name == "preprocess"
    thin = apply_step(FilterPruneStep(ratio=0.5), model, synthetic)
    assert thin.record["fine_tuned"] is False and thin.record["flops_ratio"] < 0.3


def test_qat_without_data_still_sets_quantizer_ranges():
    """Regression: without a training-mode pass, tfmot's weight ranges stay +-6 and small weights become 0."""
    from vggedge.export.convert import convert
    from vggedge.recipe.schema import QuantizeStep

    model = small_model()
    synthetic = StepContext.synthetic_for(32, progress=False)
    qat_model = apply_step(QuantizeStep(mode="int8-qat"), model, synthetic).model
    images = synthetic.train.images.astype(np.float32)
    flatbuffer = convert(qat_model, "int8-qat", synthetic.train.images)
    import gzip

    assert len(gzip.compress(flatbuffer)) > 0.5 * len(flatbuffer)  # weights survived: the file does not collapse
    record_figure(
        "qat no data: max abs diff",
        np.max(np.abs(qat_model.predict(images, verbose=0) - model.predict(images, verbose=0))),
    )
    np.testing.assert_allclose(qat_model.predict(images, verbose=0), model.predict(images, verbose=0), atol=0.05)
