"""Shared fixtures: an isolated cache, the digits as an image folder, and a tiny trained VGG16.

The tiny model has VGG16's exact topology (13 conv layers in five blocks, Flatten, two Dense, softmax)
at 1/4 of the width and 256 dense units, so every recipe runs on it in seconds.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import pytest

# Tests never touch the user's cache or the network. Set before vggedge is imported.
_SESSION_TMP = Path(os.environ.get("PYTEST_VGGEDGE_TMP", "/tmp")) / f"vggedge-tests-{os.getpid()}"
os.environ["VGGEDGE_CACHE"] = str(_SESSION_TMP / "cache")
os.environ["KERAS_HOME"] = str(_SESSION_TMP / "keras")
os.environ["VGGEDGE_OFFLINE"] = "1"
# In-process CLI calls must not point the test process's own descriptor 2 at /dev/null (tests/test_quiet.py
# runs the quiet default in a child process).
os.environ["VGGEDGE_VERBOSE"] = "1"

from vggedge.cli import main  # noqa: E402

TINY_EPOCHS = 10
# The accuracy budget (top-1 points) the tiny fixture's recipes run under. The default budget (1 point)
# is measured on the full-width sample; on this 1/4-width model removing half the filters (`fast`) lost
# 2.2 to 13.9 points over seeds 0-4 with oneDNN on and off (reports/benchmarks/test-spread-*.md), while a
# broken step loses ~90. 30 points: "works", with room for other CPUs' rounding.
TINY_MAX_DROP = 30.0
# Every random choice of the suite (weight init, shuffling, the recipes' --seed) derives from this one
# number, so a run is reproducible whatever the test order, and `benchmarks/test_spread.py` can re-run
# the suite under other seeds to measure how far each figure moves.
TEST_SEED = int(os.environ.get("VGGEDGE_TEST_SEED", "0"))
SPREAD_LOG = os.environ.get("VGGEDGE_SPREAD_LOG")


def pytest_configure(config) -> None:  # noqa: ANN001
    from vggedge.keras_env import tf

    # Same inputs, same seed -> same numbers on this CPU (a different CPU may still round differently).
    tf.config.experimental.enable_op_determinism()


def seed_everything(seed: int = TEST_SEED) -> None:
    """Python, numpy and TensorFlow seeded: what a test or fixture that trains calls first."""
    from vggedge.keras_env import keras

    keras.utils.set_random_seed(seed)


@pytest.fixture(autouse=True)
def seeded() -> None:
    """Each test starts from the same random state, independent of which tests ran before it."""
    seed_everything()


def record_figure(name: str, value: float) -> None:
    """Log a measured figure (with the seed and oneDNN setting) for `benchmarks/test_spread.py`."""
    if SPREAD_LOG:
        import json

        with open(SPREAD_LOG, "a") as log:
            log.write(
                json.dumps(
                    {
                        "figure": name,
                        "value": float(value),
                        "seed": TEST_SEED,
                        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
                    }
                )
                + "\n"
            )


@pytest.fixture(scope="session")
def digits_dir() -> Path:
    from vggedge.sample import sample_images_dir

    return sample_images_dir(Path(os.environ["VGGEDGE_CACHE"]))


@pytest.fixture(scope="session")
def digits(digits_dir):  # noqa: ANN001, ANN201
    from vggedge.sample import load_sample_dataset

    # Decoded once for the session: tests that train on the digits directly slice arrays. The streamed
    # path (FileSplit) is what every CLI run in the suite takes, and tests/test_streaming.py checks it.
    dataset = load_sample_dataset(Path(os.environ["VGGEDGE_CACHE"]), progress=False)
    return dataclasses.replace(dataset, train=dataset.train.decoded())


def train_tiny(dataset, classes: int = 10, epochs: int = TINY_EPOCHS):  # noqa: ANN001, ANN201
    from vggedge.models.vgg import VGGSpec, build_vgg16
    from vggedge.sample import TrainingPlan, train_classifier

    seed_everything()
    spec = VGGSpec(input_size=32, classes=classes, width=1 / 4, dense_units=256, preprocess="unit")
    model = build_vgg16(spec, initializer="he_normal", name="tiny_vgg16")
    plan = TrainingPlan(epochs=epochs, learning_rate=1e-3, seed=TEST_SEED)
    accuracy = train_classifier(model, dataset, plan, progress=False)
    return model, accuracy


@pytest.fixture(scope="session")
def tiny(digits):  # noqa: ANN001, ANN201
    """(model, held-out accuracy) of the tiny VGG16 trained on the digits.

    ~12 s; 98.3-99.2% over seeds 0-4 with oneDNN on and off."""
    model, accuracy = train_tiny(digits)
    record_figure("tiny: held-out top-1", accuracy)
    assert accuracy >= 0.95, f"the tiny fixture did not train ({accuracy:.3f}): every figure below would be noise"
    return model, accuracy


@pytest.fixture(scope="session")
def tiny_h5(tiny, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.h5"
    tiny[0].save(path)
    return path


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys):  # noqa: ANN001, ANN201
    """Run ``vggedge ARGS`` in-process and return exit code, stdout and stderr."""

    def run(*args: str) -> CliResult:
        argv = sys.argv
        sys.argv = ["vggedge", *map(str, args)]
        code = 0
        try:
            main()
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        finally:
            sys.argv = argv
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file()) if Path(folder).exists() else []


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def run_cli(*args: str) -> int:
    """Run ``vggedge ARGS`` in-process (for fixtures wider than one test); returns the exit code."""
    argv = sys.argv
    sys.argv = ["vggedge", *map(str, args)]
    try:
        main()
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 0
    finally:
        sys.argv = argv
    return 0


def tiny_optimize_args(recipe: str, model: Path, data: Path, out: Path, max_drop: float) -> list[str]:
    """`optimize` on the tiny VGG16 and the digits with the sample's split sizes (so the evaluation images
    are exactly the ones the tiny model never trained on) and the suite's seed. Runs compared with
    `all_runs` (tests/test_distribute.py) take the same arguments from here."""
    return [
        "optimize",
        "--recipe",
        recipe,
        "--model",
        str(model),
        "--data",
        str(data),
        "--out",
        str(out),
        "-q",
        "--runs",
        "5",
        "--eval-samples",
        "360",
        "--calibration-samples",
        "100",
        "--seed",
        str(TEST_SEED),
        "--max-drop",
        str(max_drop),
    ]


@pytest.fixture(scope="session")
def all_runs(tiny_h5, digits_dir, tmp_path_factory) -> Path:
    """`vggedge optimize --recipe all` on the tiny VGG16 and the digits: one run folder per shipped recipe."""
    out = tmp_path_factory.mktemp("all-runs")
    # The sample's split sizes, so the evaluation images are exactly the ones the tiny model never trained on.
    # The budget is TINY_MAX_DROP, not the default: see test_recipes_all for why and for each recipe's own bar.
    code = run_cli(*tiny_optimize_args("all", tiny_h5, digits_dir, out, TINY_MAX_DROP))
    assert code == 0
    return out
