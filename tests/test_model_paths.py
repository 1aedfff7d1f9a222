"""A folder given as the model gets a true answer (it was told "does not exist"), from every command."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("layout", "words"),
    [
        ({"saved_model.pb": b"x", "variables/variables.index": b"x"}, "is a TensorFlow SavedModel folder"),
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
    assert done.code == 2 and "does not exist: pass a .keras or .h5 file" in done.err
