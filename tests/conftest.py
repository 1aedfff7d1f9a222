"""Shared fixtures: an isolated cache, the digits as an image folder, and a tiny trained VGG16.

The tiny model has VGG16's exact topology (13 conv layers in five blocks, Flatten, two Dense, softmax)
at 1/4 of the width and 256 dense units, so every recipe runs on it in seconds."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import (  # noqa: F401
    AUTO_MAX_DROP,
    AUTO_SEARCH_IMAGES,
    AUTO_SEARCH_MINUTES,
    FORM_MAX_EPOCHS,
    H5_FORMS,
    HEAVY_FIXTURES,
    LONGEST_FORMS,
    SKIPPED_FORMS,
    SPREAD_LOG,
    TEST_SEED,
    TINY_EPOCHS,
    TINY_MAX_DROP,
    convert_function,
    distributed_run_commands,
    files_under,
    form_optimize_args,
    form_run_commands,
    kit_run_commands,
    record_figure,
    seed_everything,
    start_bench_server,
    suite_forms,
    tiny_command,
    tiny_optimize_args,
    train_tiny,
    vggedge_command,
)

# What every test process and every child it starts sees: its own cache, no network, no rest or load before `bench`
# timings (tests/test_bench.py sets them where the mechanism is what it asserts), and in-process CLI calls that
# leave the test process's own descriptor 2 alone (tests/test_quiet.py runs the quiet default in a child).
TEST_ENVIRONMENT = {
    "VGGEDGE_OFFLINE": "1",
    "VGGEDGE_TRAINING_PRECISION": "float32",
    "VGGEDGE_COOLDOWN": "0",
    "VGGEDGE_SUSTAIN": "0",
    "VGGEDGE_VERBOSE": "1",
}


def pytest_configure(config) -> None:  # noqa: ANN001
    """Before any test module imports vggedge: the session's own folder for caches (removed at the end) and the
    test environment, the previous values kept to be restored."""
    import tempfile

    config.vggedge_tmp = Path(tempfile.mkdtemp(prefix="vggedge-tests-"))
    settings = {
        **TEST_ENVIRONMENT,
        "VGGEDGE_CACHE": str(config.vggedge_tmp / "cache"),
        "KERAS_HOME": str(config.vggedge_tmp / "keras"),
    }
    config.vggedge_saved_environment = {name: os.environ.get(name) for name in settings}
    # A suite started in the background (`pytest &` from a script) inherits Ctrl-C ignored, and so would every child
    # it starts: the tests of what Ctrl-C does need it delivered, in this process and (reset on exec) in the children.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.update(settings)
    from vggedge.backend.keras_env import tf

    # Same inputs, same seed -> same numbers on this CPU (a different CPU may still round differently).
    tf.config.experimental.enable_op_determinism()


def pytest_unconfigure(config) -> None:  # noqa: ANN001
    """The session's folder removed and the environment as it was."""
    import shutil

    for name, value in getattr(config, "vggedge_saved_environment", {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if getattr(config, "vggedge_tmp", None):
        shutil.rmtree(config.vggedge_tmp, ignore_errors=True)


@pytest.fixture(autouse=True)
def seeded() -> None:
    """Each test starts from the same random state, independent of which tests ran before it."""
    seed_everything()


@pytest.fixture(scope="session")
def digits_dir() -> Path:
    from vggedge.models.sample import sample_images_dir

    return sample_images_dir(Path(os.environ["VGGEDGE_CACHE"]))


@pytest.fixture(scope="session")
def small_digits_dir(digits_dir, tmp_path_factory) -> Path:
    """30 digits per class (300 images): for tests of a mechanism (seeding, quiet output, a refusal) that
    need a real folder and a short fine-tune, not the full split's 1,337 training images."""
    import shutil

    root = tmp_path_factory.mktemp("small-digits")
    for folder in sorted(Path(digits_dir).iterdir()):
        if folder.is_dir():
            (root / folder.name).mkdir()
            for image in sorted(folder.iterdir())[:30]:
                shutil.copy(image, root / folder.name / image.name)
    return root


@pytest.fixture(scope="session")
def digits(digits_dir):  # noqa: ANN001, ANN201
    from vggedge.models.sample import load_sample_dataset

    # Decoded once for the session: tests that train on the digits directly slice arrays. The streamed
    # path (FileSplit) is what every CLI run in the suite takes, and tests/test_streaming.py checks it.
    dataset = load_sample_dataset(Path(os.environ["VGGEDGE_CACHE"]), progress=False)
    return dataclasses.replace(dataset, train=dataset.train.decoded())


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

    from vggedge.cli import main

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


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.hookimpl(trylast=True)  # after pytest-randomly's shuffle, which this keeps within each group
def pytest_collection_modifyitems(session, config, items) -> None:  # noqa: ANN001
    """Note which long runs the selected tests need, so the session starts them at once (tests/heavy.py),
    and run the tests that need none of them first: they go on while the long runs work."""

    def waits_for(item) -> int:  # noqa: ANN001
        return next((rank for rank, name in enumerate(HEAVY_FIXTURES, 1) if name in item.fixturenames), 0)

    config.vggedge_heavy = {name for item in items for name in HEAVY_FIXTURES if name in item.fixturenames}
    items.sort(key=waits_for)


@pytest.fixture(scope="session", autouse=True)
def heavy_runs(request, tmp_path_factory):  # noqa: ANN001, ANN201
    """Starts the selected tests' long runs in child processes before the first test (see tests/heavy.py)."""
    from heavy import HeavyRuns

    needed = getattr(request.config, "vggedge_heavy", set())
    runs = HeavyRuns(tmp_path_factory.mktemp("heavy-runs"))
    if needed:
        digits_dir = request.getfixturevalue("digits_dir")
    form_commands = form_run_commands(tmp_path_factory, digits_dir) if "form_runs" in needed else {}
    # The longest run first (the BatchNormalization form: 300-480 s where the others take 200-300), then the ones
    # the first tests wait for: a long run started last leaves the other slot idle at the end.
    for name in [name for name in form_commands if name in LONGEST_FORMS]:
        runs.submit(f"form-{name}", *form_commands.pop(name))
    if "all_runs" in needed:
        out = tmp_path_factory.mktemp("all-runs")
        tiny_h5 = request.getfixturevalue("tiny_h5")
        # The budget is TINY_MAX_DROP, not the default: see test_recipes_all for why and for each recipe's own bar.
        # Every format too: each recipe's ONNX file is written, verified and timed beside its TFLite one.
        command = [*tiny_command("all", tiny_h5, digits_dir, out, TINY_MAX_DROP), "--formats", "all"]
        runs.submit("all_runs", [command], out)
    server = None
    if "auto_runs" in needed:
        tiny_h5 = request.getfixturevalue("tiny_h5")
        out = tmp_path_factory.mktemp("auto-runs")
        # The search times its candidates through a bench server on loopback, as it would on a Pi (--time-on).
        server, url, token = start_bench_server(out / "bench-token")
        search = tiny_optimize_args("auto", tiny_h5, digits_dir, out / "found", AUTO_MAX_DROP)
        search += ["--search-minutes", AUTO_SEARCH_MINUTES, "--search-images", AUTO_SEARCH_IMAGES]
        search += ["--max-epochs", FORM_MAX_EPOCHS, "--time-on", url, "--time-on-token", token]
        found = out / "found" / "auto" / "recipe.toml"
        replay = tiny_optimize_args(found, tiny_h5, digits_dir, out / "replay", AUTO_MAX_DROP)
        runs.submit("auto_runs", [vggedge_command(search), vggedge_command(replay)], out)
    for name, (commands, out) in form_commands.items():
        runs.submit(f"form-{name}", commands, out)
    if "kit_runs" in needed:
        out = tmp_path_factory.mktemp("kit-runs")
        runs.submit("kit_runs", kit_run_commands(request.getfixturevalue("tiny_h5"), out), out)
    if "distributed_runs" in needed:
        out = tmp_path_factory.mktemp("distributed-runs")
        tiny_h5 = request.getfixturevalue("tiny_h5")
        for name, commands in distributed_run_commands(tiny_h5, digits_dir, out).items():
            runs.submit(name, commands, out)
    yield runs
    request.config.vggedge_heavy_timings = runs.timings()
    runs.close()
    if server is not None:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)


def pytest_terminal_summary(terminalreporter, config) -> None:  # noqa: ANN001
    timings = getattr(config, "vggedge_heavy_timings", [])
    if timings:
        terminalreporter.write_line("long runs (tests/heavy.py, two at a time): " + "; ".join(timings))


@pytest.fixture(scope="session")
def all_runs(heavy_runs) -> Path:  # noqa: ANN001
    """`vggedge optimize --recipe all` on the tiny VGG16 and the digits: one run folder per shipped recipe."""
    return heavy_runs.result("all_runs").out


@pytest.fixture(scope="session")
def form_runs(heavy_runs) -> dict[str, Path]:  # noqa: ANN001
    """{form: run folder} after `optimize --recipe all` on each trained form (tests/forms.py)."""
    return {name: heavy_runs.result(f"form-{name}").out for name in suite_forms()}


@pytest.fixture(scope="session")
def auto_runs(heavy_runs) -> Path:  # noqa: ANN001
    """`optimize --recipe auto` on the tiny VGG16 (``found/auto``), then its recipe.toml replayed (``replay/auto``)."""
    return heavy_runs.result("auto_runs").out


@pytest.fixture(scope="session")
def kit_runs(heavy_runs) -> Path:  # noqa: ANN001
    """`vggedge kit` on the tiny VGG16 (``kit``, the command's output in the run's log), then `bench --profile` of it
    at one thread (``table/table-1t.json``)."""
    return heavy_runs.result("kit_runs").out


@pytest.fixture(scope="session")
def distributed_runs(heavy_runs) -> Path:  # noqa: ANN001
    """`optimize --recipe prune` on the tiny VGG16 over two logical CPU devices (``mirrored``) and as a two-worker
    cluster on loopback (``chief``, ``worker`` and their logs): tests/test_distribute.py holds them to all_runs'."""
    for name in ("distributed-mirrored", "distributed-workers"):
        heavy_runs.result(name)
    return heavy_runs.result("distributed-mirrored").out


@pytest.fixture(scope="session")
def tflite_bytes(tmp_path_factory) -> bytes:
    """A small VGG-topology float32 TFLite model (untrained: the server times, it does not score)."""
    from vggedge.export.convert import convert
    from vggedge.models.vgg import VGGSpec, build_vgg16

    spec = VGGSpec(input_size=32, classes=10, width=1 / 16, dense_units=32, preprocess="unit")
    return convert(build_vgg16(spec, name="served"), "float32")


@pytest.fixture(scope="session")
def forever_model() -> bytes:
    """An image model whose WHILE loop never ends on the server's zero input (1,000 bytes or so)."""
    from vggedge.backend.keras_env import tf

    def forever(x):  # noqa: ANN001, ANN202
        def again(i, total):  # noqa: ANN001, ANN202
            return total > -1.0  # pixels are never negative: always true

        _, total = tf.while_loop(again, lambda i, total: (i + 1.0, total + 0.0), [0.0, tf.reduce_sum(x)])
        return tf.reduce_mean(x, axis=[1, 2]) * total

    flatbuffer = convert_function(forever, [1, 8, 8, 3])
    assert b"WHILE" in flatbuffer or len(flatbuffer) < 4000
    return flatbuffer
