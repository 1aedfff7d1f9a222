"""`bench` and `predict` on a model that loops for ever: one call is stopped at its limit in one line, and Ctrl-C
works while the interpreter's C loop runs (before, both commands hung and ignored Ctrl-C)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

SCRIPT = """
import sys
from vggedge.device import call_guard
from vggedge import Classifier

call_guard.install(float(sys.argv[3]))
classifier = Classifier(sys.argv[1])
print("calling", flush=True)
classifier.predict(sys.argv[2])
print("returned", flush=True)
"""


def start(model, image, limit: float, children: list) -> subprocess.Popen:  # noqa: ANN001
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(model), str(image), str(limit)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children.append(process)
    assert process.stdout.readline() == "calling\n"
    return process


def files(tmp_path, forever_model):  # noqa: ANN001, ANN201
    model = tmp_path / "forever.tflite"
    model.write_bytes(forever_model)
    image = tmp_path / "photo.png"
    Image.new("RGB", (8, 8)).save(image)
    return model, image


@pytest.fixture
def children():  # noqa: ANN201
    """The processes a test starts, killed when it ends: a failed test must not leave a model looping for ever."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        process.kill()
        process.communicate()


def test_a_call_past_its_limit_is_stopped_in_one_line(tmp_path, forever_model, children):
    process = start(*files(tmp_path, forever_model), limit=1.0, children=children)
    started = time.monotonic()
    out, err = process.communicate(timeout=30)
    assert process.returncode == 2 and time.monotonic() - started < 5 and "returned" not in out
    assert err.strip().splitlines()[-1].startswith("error: one call of the model took more than 1 s")


def test_ctrl_c_inside_a_call_stops_at_once(tmp_path, forever_model, children):
    process = start(*files(tmp_path, forever_model), limit=600, children=children)
    time.sleep(0.5)  # inside the interpreter's loop
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and time.monotonic() - started < 3
    assert (
        err.strip().splitlines()[-1] == "interrupted during a call of the model: stopped (nothing half-written is left)"
    )


def wait_for_guard(pid: int, seconds: float = 60) -> None:
    """Until the process's guard thread runs (its name in /proc): the command is about to call the model."""
    from pathlib import Path

    from vggedge.device.call_guard import THREAD_NAME

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for comm in Path(f"/proc/{pid}/task").glob("*/comm"):
            try:
                if comm.read_text().strip() == THREAD_NAME:
                    return
            except OSError:
                continue
        time.sleep(0.1)
    raise AssertionError("the guard never started")


def test_the_cli_commands_install_the_guard(tmp_path, forever_model, children):
    model, image = files(tmp_path, forever_model)
    for command in (["predict", model, image], ["bench", model, "--runs", "1", "--warmup", "0", "--cooldown", "0"]):
        process = subprocess.Popen(
            [sys.executable, "-m", "vggedge", *map(str, command)], stderr=subprocess.PIPE, text=True
        )
        children.append(process)
        wait_for_guard(process.pid)
        time.sleep(1.5)  # inside the first call
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 130 and "interrupted during a call of the model" in err, (command, err[-300:])
