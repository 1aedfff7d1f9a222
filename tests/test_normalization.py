"""BatchNormalization: folded for QAT with the same function, re-estimated after steps, checked in inference mode."""

from __future__ import annotations

import numpy as np
import pytest

from vggedge.backend.keras_env import keras
from vggedge.models.anatomy import find_anatomy
from vggedge.models.normalization import (
    describe_normalization,
    fold_batch_norm,
    fold_for_quantization,
    reestimate_statistics,
    summary,
)


def randomize_statistics(model: keras.Model, seed: int) -> None:
    """Moving statistics and affine parameters far from the identity, as training leaves them."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            n = gamma.shape[0]
            layer.set_weights(
                [rng.uniform(0.5, 2.0, n), rng.normal(0, 0.5, n), rng.normal(0, 0.5, n), rng.uniform(0.2, 3.0, n)]
            )


def vgg_bn(relu_before_norm: bool = False, momentum: float = 0.99) -> keras.Model:
    """Two BN blocks (Conv(use_bias=False) -> BN -> ReLU) and a Dense -> BN -> ReLU head; optionally one
    block's normalization after its activation, where it cannot fold."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    for width in (4, 8):
        for _ in range(2):
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization(momentum=momentum)(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu" if relu_before_norm else None)(x)
    x = keras.layers.BatchNormalization(momentum=momentum)(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16)(x)
    x = keras.layers.BatchNormalization(momentum=momentum)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Dropout(0.3)(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x), name="vgg_bn")


@pytest.mark.parametrize("relu_before_norm", [False, True])
def test_folding_keeps_the_function_and_removes_the_foldable_normalizations(relu_before_norm):
    keras.utils.set_random_seed(0)
    model = vgg_bn(relu_before_norm)
    randomize_statistics(model, seed=1)
    images = np.random.default_rng(2).uniform(0, 255, (8, 16, 16, 3)).astype(np.float32)
    folded, fates = fold_batch_norm(model)
    assert len(fates) == 6
    kept = [f for f in fates if f.folded_into is None]
    norms = [layer for layer in folded.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(kept) == len(norms) == (1 if relu_before_norm else 0)
    if relu_before_norm:
        assert "relu activation" in kept[0].why_kept
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(folded.predict(images, verbose=0), expected, rtol=1e-4, atol=1e-5)
    assert find_anatomy(folded).convs == find_anatomy(model).convs  # names carried over
    for fate in fates:
        if fate.folded_into:
            assert folded.get_layer(fate.folded_into).use_bias


def test_folded_for_quantization_a_bn_vgg_is_a_plain_vgg():
    """What int8-qat trains: no normalization, no separate ReLU layer, the same outputs."""
    keras.utils.set_random_seed(0)
    model = vgg_bn()
    randomize_statistics(model, seed=1)
    plain = fold_for_quantization(model)
    kinds = {type(layer).__name__ for layer in plain.layers}
    assert not kinds & {"BatchNormalization", "ReLU"}, kinds
    assert [layer.activation.__name__ for layer in plain.layers if isinstance(layer, keras.layers.Conv2D)] == [
        "relu",
        "relu",
        "relu",
        "relu",
        "linear",  # the last conv had no ReLU after its normalization
    ]
    images = np.random.default_rng(2).uniform(0, 255, (8, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(plain.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-4, atol=1e-5)


def test_every_normalization_is_described_with_the_layer_it_follows():
    model = vgg_bn()
    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    dense = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dense)][0]
    described = describe_normalization(model)
    assert [n["follows"] for n in described] == [*convs, dense]
    assert all("re-estimated" in n["handling"] for n in described)
    assert summary(described).startswith(f"6 BatchNormalization (after {convs[0]}, {convs[1]}, … {dense})")
    assert summary([]) is None


def test_a_model_without_normalization_is_returned_as_is():
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3), keras.layers.Flatten()])
    assert fold_batch_norm(model) == (model, [])


def test_frozen_layers_stay_frozen():
    model = vgg_bn()
    model.layers[2].trainable = False  # the first conv
    folded, _ = fold_batch_norm(model)
    assert not folded.get_layer(model.layers[2].name).trainable
    assert folded.get_layer(model.layers[5].name).trainable


def brightness_task(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes told apart by brightness: a task the small BN model learns in a few epochs."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 3
    images = labels[:, None, None, None] * 100.0 + rng.uniform(0, 50, (count, 16, 16, 3))
    return images.astype(np.float32), labels


def test_a_model_wrong_only_in_inference_mode_is_stopped_with_the_reason():
    """Stale moving statistics (what a step that changes weights leaves behind a kept BatchNormalization):
    right with batch statistics, wrong with the stored ones. The healthy model passes; the stale one is
    stopped with the reason, and the check leaves the statistics as they were."""
    from vggedge.steps.inference_check import InferenceModeCollapse, check_inference_mode, stale_baseline_note

    keras.utils.set_random_seed(0)
    model = vgg_bn(relu_before_norm=True, momentum=0.5)  # statistics that settle within a few epochs
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    train_images, train_labels = brightness_task(192, seed=1)
    model.fit(train_images, train_labels, epochs=8, batch_size=32, verbose=0)
    images, labels = brightness_task(64, seed=2)
    healthy = check_inference_mode("filter-prune", model, model, images, labels)
    assert healthy["inference_agreement"] >= 0.9 and healthy["training_agreement"] >= 0.9, healthy
    assert stale_baseline_note(model, images, labels) is None
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma, beta, mean + 40.0, variance * 1e-3])  # statistics of other layers
    stale = [
        w.copy()
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
        for w in layer.get_weights()
    ]
    with pytest.raises(InferenceModeCollapse, match="inference mode but .* in training mode"):
        check_inference_mode("filter-prune", model, model, images, labels)
    # The same state in the user's own model: said up front, as a note on every report of the run.
    note = stale_baseline_note(model, images, labels)
    assert note and "the baseline itself is right on" in note and "in inference mode" in note
    after = [
        w for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization) for w in layer.get_weights()
    ]
    for before, now in zip(stale, after, strict=True):
        np.testing.assert_array_equal(before, now)


def test_reestimation_brings_stale_statistics_back():
    """After the statistics went stale, one pass of re-estimation makes inference mode agree with training mode."""
    from vggedge.core.data import Split
    from vggedge.steps.inference_check import check_inference_mode

    keras.utils.set_random_seed(0)
    model = vgg_bn(relu_before_norm=True, momentum=0.5)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    train_images, train_labels = brightness_task(192, seed=1)
    model.fit(train_images, train_labels, epochs=8, batch_size=32, verbose=0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma, beta, mean + 40.0, variance * 1e-3])
            layer.trainable = False  # a frozen base's normalization takes part too
    train = Split(train_images.astype(np.uint8), train_labels, [str(i) for i in range(192)])
    assert reestimate_statistics(model, train, count=128) == 128
    images, labels = brightness_task(64, seed=2)
    figures = check_inference_mode("filter-prune", model, model, images, labels)
    assert figures["inference_agreement"] >= 0.9, figures
    assert all(not layer.trainable for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert all(layer.momentum == 0.5 for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
