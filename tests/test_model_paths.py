"""A folder given as the model gets a true answer (it was told "does not exist"), from every command."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("layout", "words"),
    [
        ({"saved_model.pb": b"x", "variables/variables.index": b"x"}, "SavedModel"),  # read by optimize: its own test
        ({"model.tflite": b"x", "report.json": b"{}"}, "a vggedge run folder, it seems): its model is"),
        ({"notes.txt": b"x"}, "is a folder, not a model file"),
    ],
)
def test_a_folder_as_the_model_is_said_to_be_one(cli, tmp_path, layout, words):
    folder = tmp_path / "given"
    for name, data in layout.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    for command in (("inspect", folder), ("optimize", "--model", folder, "--out", tmp_path / "out"),
                    ("predict", folder, folder), ("bench", folder)):  # fmt: skip
        done = cli(*command)
        assert done.code == 2 and "does not exist" not in done.err, (command, done.err)
        # bench takes a run folder (its models) by design; predict reads .tflite files, the rest Keras files
        if command[0] in ("inspect", "optimize") or (command[0] == "predict" and "SavedModel" not in words):
            assert words in done.err, (command, done.err)
    assert not (tmp_path / "out").exists()


def test_a_missing_model_still_says_so(cli, tmp_path):
    done = cli("inspect", tmp_path / "nope.keras")
    assert done.code == 2 and "does not exist: pass a .keras, .h5, .safetensors, .pth or .onnx file" in done.err


def test_a_keras2_savedmodel_folder_is_read_as_its_model_and_checked_like_a_file(tmp_path):
    """What ``model.save("dir")`` wrote before Keras 3: the same model as its .h5, and a Lambda inside refused."""
    import numpy as np

    from vggedge.backend.keras_env import keras
    from vggedge.core.errors import ModelError
    from vggedge.models.loading import load_model_file
    from vggedge.models.vgg import VGGSpec, build_vgg16

    model = build_vgg16(VGGSpec(input_size=32, classes=3, width=1 / 16, dense_units=8, preprocess="unit"))
    model.save(tmp_path / "saved", save_format="tf")
    assert (tmp_path / "saved" / "saved_model.pb").is_file()
    baseline = load_model_file(tmp_path / "saved", None)
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(baseline.model.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
    assert baseline.anatomy.is_vgg16 and baseline.anatomy.classes == 3
    inputs = keras.Input((32, 32, 3))
    lambda_model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    lambda_model.save(tmp_path / "lambda", save_format="tf")
    with pytest.raises(ModelError, match="Lambda"):
        load_model_file(tmp_path / "lambda", None)
