"""The data a user brings: a tutorial's train/validation folders, --eval-data, and too few images."""

from __future__ import annotations

import json
import shutil

import pytest

from helpers import files_under

pytestmark = pytest.mark.slow


def copy_classes(digits_dir, target, per_class: int, offset: int = 0):  # noqa: ANN001, ANN201
    for folder in sorted(digits_dir.iterdir()):
        if folder.is_dir():
            for image in sorted(folder.iterdir())[offset : offset + per_class]:
                (target / folder.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(image, target / folder.name / image.name)
    return target


def test_too_few_training_images_are_refused_before_any_work(cli, tiny_h5, digits_dir, tmp_path):
    """120 images: 60 evaluation + 60 calibration leave none to fit a new head on (it once 'passed' at -50 points)."""
    data = copy_classes(digits_dir, tmp_path / "small", 12)
    result = cli("optimize", "--recipe", "int8,gap-int8", "--model", tiny_h5, "--data", data, "--out", tmp_path / "out")
    assert result.code == 2 and files_under(tmp_path / "out") == []
    assert "recipe 'gap-int8', step 1 (head)" in result.err and "needs at least 32 training images" in result.err
    assert "leaves 0" in result.err and "--eval-data" in result.err and "Traceback" not in result.err


def test_tutorial_layout_uses_the_validation_folder_for_evaluation(cli, tiny_h5, digits_dir, tmp_path):
    data = tmp_path / "photos"
    copy_classes(digits_dir, data / "train", 60)
    copy_classes(digits_dir, data / "validation", 15, offset=60)
    result = cli(
        "optimize",
        "--recipe",
        "int8",
        "--model",
        tiny_h5,
        "--data",
        data,
        "--out",
        tmp_path / "out",
        "-q",
        "--runs",
        "1",
    )
    assert result.code == 0, result.err
    dataset = json.loads((tmp_path / "out" / "int8" / "report.json").read_text())["dataset"]
    assert dataset["eval_samples"] == 150 and dataset["eval_source"].endswith("validation")
    assert dataset["calibration_samples"] == 100 and dataset["train_samples"] == 500


def test_eval_data_names_the_evaluation_set(cli, tiny_h5, digits_dir, tmp_path):
    train = copy_classes(digits_dir, tmp_path / "train", 40)
    held_out = copy_classes(digits_dir, tmp_path / "held-out", 10, offset=40)
    result = cli(
        "optimize",
        "--recipe",
        "dynamic",
        "--model",
        tiny_h5,
        "--data",
        train,
        "--eval-data",
        held_out,
        "--out",
        tmp_path / "out",
        "-q",
        "--runs",
        "1",
    )
    assert result.code == 0, result.err
    dataset = json.loads((tmp_path / "out" / "dynamic" / "report.json").read_text())["dataset"]
    assert (
        dataset["eval_samples"] == 100 and dataset["train_samples"] == 300 and dataset["eval_source"] == str(held_out)
    )
    mismatch = copy_classes(digits_dir, tmp_path / "three", 5)
    shutil.rmtree(mismatch / "9")
    refused = cli("optimize", "--model", tiny_h5, "--data", train, "--eval-data", mismatch, "--out", tmp_path / "o2")
    assert refused.code == 2 and "give both the same class subfolders" in refused.err


def test_a_data_folder_that_vanishes_mid_run_ends_it_in_one_line(tiny_h5, digits_dir, tmp_path):
    """The training images are read while the steps run; when their folder disappears the run stops with
    one line naming the recipe, instead of fine-tuning on what is left (or on nothing) and reporting it."""
    from vggedge.core.errors import UserError
    from vggedge.recipe.schema import load_recipe
    from vggedge.run.baseline import prepare
    from vggedge.run.options import OptimizeOptions
    from vggedge.run.recipe_run import run_recipe

    data = copy_classes(digits_dir, tmp_path / "photos", 40)
    options = OptimizeOptions(
        model=str(tiny_h5), data=data, out=tmp_path / "out", eval_samples=100, runs=1, warmup=0, progress=False
    )
    prepared = prepare(options, [load_recipe("prune")])
    shutil.rmtree(data)  # evaluation and calibration images are in memory; the 200 training ones are not
    with pytest.raises(UserError, match=r"recipe 'prune': \d+ training images vanished from disk during the run"):
        run_recipe(prepared.recipes[0], prepared, options)
    assert not (tmp_path / "out" / "prune").exists()  # nothing half-written for it
