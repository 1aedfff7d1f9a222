"""Files built to cost memory or crash a parser get one line and exit 2, before the work: a .keras whose
config.json inflates to gigabytes or nests past the recursion limit, an .h5 with broken JSON, a recipe nested 500
levels or with `true` for a number, a data folder with a symlink out of it, a file in the place of a run folder."""

from __future__ import annotations

import os
import time
import zipfile

import pytest


def keras_file(path, config: bytes):  # noqa: ANN001, ANN201
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", '{"keras_version": "3.15.1"}')
        archive.writestr("config.json", config)
    return path


def test_an_inflating_config_is_refused_from_the_zip_directory(cli, tmp_path):
    model = keras_file(tmp_path / "bomb.keras", b" " * (200 * 2**20))  # 200 MiB of spaces, a few hundred KB zipped
    assert model.stat().st_size < 2**20
    started = time.monotonic()
    done = cli("inspect", model)
    assert done.code == 2 and "config.json is 200 MiB" in done.err and len(done.err.splitlines()) == 1
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("config", "words"),
    [(b"[" * 100_000 + b"]" * 100_000, "nested too deeply"), (b'{"class_name": "Sequential", ', "not valid JSON")],
)
def test_a_config_that_breaks_the_parser_is_one_line(cli, tmp_path, config, words):
    done = cli("inspect", keras_file(tmp_path / "odd.keras", config))
    assert done.code == 2 and words in done.err and len(done.err.splitlines()) == 1


def test_an_h5_with_broken_json_is_one_line(cli, tmp_path):
    import h5py

    model = tmp_path / "broken.h5"
    with h5py.File(model, "w") as handle:
        handle.attrs["model_config"] = '{"class_name": "Sequential", "config": {'
        handle.attrs["keras_version"] = "2.15.0"
    done = cli("inspect", model)
    assert done.code == 2 and "its model_config is not valid JSON" in done.err and len(done.err.splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('name = "deep"\nx = ' + "[" * 500 + "]" * 500 + "\n", "nested too deeply"),
        (
            'name = "t"\n[[steps]]\ntype = "quantize"\nmode = "int8"\ncalibration_samples = true\n',
            "calibration_samples must be a number, not true",
        ),
    ],
)
def test_a_hostile_recipe_is_one_line(cli, tmp_path, text, words):
    recipe = tmp_path / "r.toml"
    recipe.write_text(text)
    done = cli("optimize", "--recipe", recipe, "--out", tmp_path / "out")
    assert done.code == 2 and words in done.err and len(done.err.splitlines()) == 1


def test_a_symlink_out_of_the_data_folder_is_not_followed(digits_dir, tmp_path):
    from vggedge.core.data import load_folder

    data = tmp_path / "data"
    for label in ("0", "1"):
        (data / label).mkdir(parents=True)
        for source in sorted((digits_dir / label).iterdir())[:12]:
            os.symlink(source, data / label / source.name)  # a file symlink inside a class: a picture, kept
    os.symlink("..", data / "up")  # `ln -s .. up`: the folder's parent, not a class
    dataset = load_folder(data, 32, eval_samples=8, calibration_samples=0, progress=False)
    assert dataset.class_names == ["0", "1"]


def test_a_file_in_the_place_of_a_run_folder_is_refused_before_any_work(cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "int8").write_text("someone's notes")
    started = time.monotonic()
    done = cli("optimize", "--recipe", "int8", "--out", out)
    assert done.code == 2 and "int8" in done.err and "not a folder" in done.err and len(done.err.splitlines()) == 1
    assert time.monotonic() - started < 10 and (out / "int8").read_text() == "someone's notes"
