"""Bad input gets a clear answer: exit code 2, one line on stderr naming problem and fix, nothing written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from helpers import files_under

PROGRESS_LINE = re.compile(r"^[A-Z][\w ]*\w: \d+ in \d+ s$")


def assert_clean_failure(result, out, *fragments: str) -> None:  # noqa: ANN001
    assert result.code == 2, (result.code, result.err)
    lines = [line for line in result.err.strip().splitlines() if line.strip()]
    # Not a terminal here, so a stage that finished before the check may have said so in one line
    # ("Checking images: 1797 in 0 s"); the error itself is one line, the last.
    assert all(PROGRESS_LINE.match(line) for line in lines[:-1]), result.err
    assert lines[-1].startswith("error: "), result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in result.err.replace("\n", " "), result.err
    assert files_under(out) == [], files_under(out)


@pytest.fixture
def out(tmp_path):  # noqa: ANN001, ANN201
    return tmp_path / "out"


def two_class_folder(root, digits_dir, classes=("0", "1", "2")):  # noqa: ANN001, ANN201
    for name in classes:
        shutil.copytree(digits_dir / name, root / name)
    return root


def test_misspelled_recipe(cli, out):
    assert_clean_failure(
        cli("optimize", "--recipe", "int9", "--out", out),
        out,
        "unknown recipe 'int9'",
        "did you mean 'int8'?",
        "available:",
    )


def test_empty_recipe_list(cli, out):
    assert_clean_failure(cli("optimize", "--recipe", " , ", "--out", out), out, "names no recipe")


def test_recipe_named_twice(cli, out, tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text('name = "int8"\n[[steps]]\ntype = "quantize"\nmode = "float16"\n')
    assert_clean_failure(cli("optimize", "--recipe", f"int8,{mine}", "--out", out), out, "'int8' more than once")


def test_missing_recipe_file(cli, out, tmp_path):
    assert_clean_failure(
        cli("optimize", "--recipe", tmp_path / "nope.toml", "--out", out), out, "nope.toml does not exist"
    )


def test_recipe_with_unknown_key(cli, out, tmp_path):
    recipe = tmp_path / "mine.toml"
    recipe.write_text('name = "mine"\n[[steps]]\ntype = "quantize"\nmode = "int8"\ncalibration = 10\n')
    assert_clean_failure(
        cli("optimize", "--recipe", recipe, "--out", out),
        out,
        "mine.toml",
        "unknown key 'steps.0.calibration'",
        "did you mean 'calibration_samples'?",
    )


def test_recipe_with_bad_value(cli, out, tmp_path):
    recipe = tmp_path / "mine.toml"
    recipe.write_text('name = "mine"\n[[steps]]\ntype = "prune"\nsparsity = 1.5\n')
    assert_clean_failure(
        cli("optimize", "--recipe", recipe, "--out", out), out, "steps.0.sparsity", "less than 1", "Received: 1.5"
    )


def test_missing_model_file(cli, out, tmp_path):
    assert_clean_failure(cli("optimize", "--model", tmp_path / "m.keras", "--out", out), out, "m.keras does not exist")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("m.h5", b"\x89HDF garbage", "not a readable HDF5 model file"),
        ("m.keras", b"PK\x03\x04 truncated zip", "not a readable .keras model file"),
        ("m.onnx", b"whatever", "is not a readable ONNX file"),
        ("m.safetensors", b"whatever", "is not a readable safetensors file"),
        ("m.pb", b"whatever", "unsupported model file type '.pb'"),
    ],
)
def test_corrupt_or_non_keras_model_file(cli, out, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    assert_clean_failure(cli("optimize", "--model", path, "--out", out), out, message)


def test_model_that_is_not_an_image_classifier(cli, out, tmp_path):
    from vggedge.backend.keras_env import keras

    path = tmp_path / "tabular.h5"
    keras.Sequential([keras.Input((20,)), keras.layers.Dense(3, activation="softmax")]).save(path)
    assert_clean_failure(
        cli("optimize", "--model", path, "--out", out), out, "is not an image classifier", "(None, 20)"
    )


def test_model_with_code_is_refused(cli, out, tmp_path):
    from vggedge.backend.keras_env import keras

    path = tmp_path / "lambda.h5"
    keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Flatten(), keras.layers.Dense(2)]
    ).save(path)
    assert_clean_failure(cli("optimize", "--model", path, "--out", out), out, "Lambda", "arbitrary code")


def test_missing_data_folder(cli, out, tiny_h5, tmp_path):
    assert_clean_failure(
        cli("optimize", "--model", tiny_h5, "--data", tmp_path / "nodata", "--out", out),
        out,
        "nodata does not exist",
        "--data DIR",
    )


def test_empty_data_folder(cli, out, tiny_h5, tmp_path):
    (tmp_path / "empty").mkdir()
    assert_clean_failure(
        cli("optimize", "--model", tiny_h5, "--data", tmp_path / "empty", "--out", out),
        out,
        "has no JPEG or PNG images",
    )


def test_class_mismatch(cli, out, tiny_h5, digits_dir, tmp_path):
    data = two_class_folder(tmp_path / "three", digits_dir)
    assert_clean_failure(
        cli("optimize", "--model", tiny_h5, "--data", data, "--out", out),
        out,
        "the data has 3 classes",
        "the model outputs 10",
    )


def test_only_corrupt_images(cli, out, tiny_h5, tmp_path):
    for name in "ab":
        (tmp_path / "bad" / name).mkdir(parents=True)
        (tmp_path / "bad" / name / "x.jpg").write_bytes(b"\xff\xd8\xff broken")
    assert_clean_failure(
        cli("optimize", "--model", tiny_h5, "--data", tmp_path / "bad", "--out", out),
        out,
        "none of the 2 images",
        "could be decoded",
    )


@pytest.mark.parametrize("how", ["VGGEDGE_OFFLINE=1", "--offline"])
def test_imagenet_weights_unavailable_offline(cli, out, monkeypatch, how):
    """The environment variable is read by the CLI only, as the option's source (conftest sets it)."""
    if how == "--offline":
        monkeypatch.delenv("VGGEDGE_OFFLINE")
    assert_clean_failure(
        cli("optimize", "--model", "vgg16", "--out", out, *(["--offline"] if how == "--offline" else [])),
        out,
        "ImageNet VGG16 weights are not cached",
        "--weights PATH",
        "--weights random",
    )


def test_missing_weights_file(cli, out, tmp_path):
    assert_clean_failure(
        cli("optimize", "--model", "vgg16", "--weights", tmp_path / "w.h5", "--out", out), out, "w.h5 does not exist"
    )


def test_unwritable_output_folder(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    result = cli("optimize", "--out", blocker / "reports")
    assert result.code == 2 and "cannot write to output folder" in result.err and "--out DIR" in result.err
    assert "Traceback" not in result.err


def test_bad_preprocess_choice(cli, out, tiny_h5):
    assert_clean_failure(
        cli("optimize", "--model", tiny_h5, "--preprocess", "imagenet", "--out", out),
        out,
        "--preprocess must be none, unit, tf, caffe or torch",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--recipe", "fp16,int8-qat", "--keep-float", "auto"), "applies to recipes that end in full int8"),
        (("--recipe", "int8", "--keep-float", "heads"), "--keep-float 'heads'"),
        (("--recipe", "auto", "--keep-float", "auto"), "not to --recipe auto"),
    ],
)
def test_keep_float_where_it_cannot_apply(cli, out, args, message):
    assert_clean_failure(cli("optimize", *args, "--out", out), out, message)


def test_a_real_process_exits_2_without_traceback(tmp_path):
    env = {**os.environ, "VGGEDGE_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "vggedge", "optimize", "--recipe", "nope", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: unknown recipe 'nope'") and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()
