"""Users' model files: Keras 3 .keras (translated to Keras 2) and Keras 2 .h5, incl. a 1-unit sigmoid head."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from helpers import record_figure

pytestmark = pytest.mark.slow


def transfer_learning_keras3(path):  # noqa: ANN001, ANN201
    """The tutorials' shape in Keras 3: a frozen conv base (nested model) under a new 1-unit sigmoid head."""
    import keras as keras3

    from helpers import TEST_SEED

    keras3.utils.set_random_seed(TEST_SEED)  # Keras 3 has its own random state
    base = keras3.Sequential(
        [
            keras3.Input((32, 32, 3)),
            keras3.layers.Rescaling(1 / 255.0),
            keras3.layers.Conv2D(8, 3, padding="same", activation="relu", name="block1_conv1"),
            keras3.layers.MaxPooling2D(2, name="block1_pool"),
            keras3.layers.Conv2D(8, 3, padding="same", activation="relu", name="block2_conv1"),
            keras3.layers.MaxPooling2D(2, name="block2_pool"),
        ],
        name="vgg_base",
    )
    base.trainable = False
    model = keras3.Sequential(
        [
            keras3.Input((32, 32, 3)),
            base,
            keras3.layers.Flatten(name="flatten"),
            keras3.layers.Dense(16, activation="relu", name="fc1"),
            keras3.layers.Dropout(0.2),
            keras3.layers.Dense(1, activation="sigmoid", name="predictions"),
        ]
    )
    model.compile("adam", "binary_crossentropy")
    model.save(path)
    return model


def test_keras3_file_translates_exactly(tmp_path, rng):
    from vggedge.models.loading import load_model_file

    keras3_model = transfer_learning_keras3(tmp_path / "tl.keras")
    baseline = load_model_file(tmp_path / "tl.keras", "none")
    images = rng.integers(0, 256, size=(4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(
        baseline.model.predict(images, verbose=0), keras3_model.predict(images, verbose=0), atol=1e-5
    )
    assert baseline.classes == 2 and baseline.model.get_layer("block2_conv1") is not None


def test_sigmoid_keras3_model_through_optimize(cli, tmp_path, digits_dir):
    import keras as keras3

    model = transfer_learning_keras3(tmp_path / "tl.keras")
    for name in ("0", "1"):
        shutil.copytree(digits_dir / name, tmp_path / "data" / name)
    # Train the head a little so accuracy means something: 0 vs 1 digits.
    from vggedge.core.data import load_folder

    data = load_folder(tmp_path / "data", 32, progress=False)
    train = data.train.decoded()
    model.fit(train.images, train.labels, epochs=15, verbose=0)
    keras3.saving.save_model(model, tmp_path / "tl.keras")
    result = cli(
        "optimize",
        "--recipe",
        "int8",
        "--model",
        tmp_path / "tl.keras",
        "--data",
        tmp_path / "data",
        "--out",
        tmp_path / "out",
        "-q",
        "--runs",
        "3",
    )
    assert result.code == 0, result.err
    report = json.loads((tmp_path / "out" / "int8" / "report.json").read_text())
    assert report["model"]["classes"] == 2 and report["baseline"]["top5"] is None
    record_figure("keras3 sigmoid: baseline top-1", report["baseline"]["top1"])
    record_figure("keras3 sigmoid: int8 agreement", report["result"]["agreement"])
    assert report["baseline"]["top1"] >= 0.85  # 0.92-1.0 over seeds 0-4, oneDNN on and off
    assert report["result"]["status"] == "ok" and report["result"]["agreement"] >= 0.97
