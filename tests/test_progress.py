"""Progress in a plain log (a file, a pipe, CI): lines, not bars, and never silence during long work."""

from __future__ import annotations

import numpy as np
import pytest


def test_a_stage_in_a_log_ends_with_one_line_and_reports_as_it_goes(capsys, monkeypatch):
    import vggedge.core.progress
    from vggedge.core.progress import track

    assert list(track(range(5), "Counting", total=5)) == [0, 1, 2, 3, 4]
    lines = capsys.readouterr().err.splitlines()
    assert lines == [lines[0]] and lines[0].startswith("Counting: 5 in ")  # one line when it ends, no bar codes

    monkeypatch.setattr(vggedge.core.progress, "LOG_EVERY_S", 0.0)  # a long stage: a line at every step
    list(track(range(3), "Reading", total=3))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("Reading: 1/3, ") and "left" in lines[0]
    assert lines[-1].startswith("Reading: 3 in ") and len(lines) == 3
    assert "\x1b" not in "".join(lines)


def test_quiet_means_no_line_at_all(capsys):
    from vggedge.core.progress import track

    assert list(track(range(3), "Counting", total=3, enabled=False)) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_training_in_a_log_prints_one_line_per_epoch(capsys):
    from vggedge.backend.keras_env import keras
    from vggedge.backend.training import fit
    from vggedge.core.data import Split

    images = np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(40) % 2
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs)))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    losses = fit(model, Split(images, labels, [f"k{i}" for i in range(40)]), labels, 3, 16, "Fitting")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("Fitting")]
    assert [line.split(",")[0] for line in lines] == ["Fitting: epoch 1/3", "Fitting: epoch 2/3", "Fitting: epoch 3/3"]
    # The line says the epoch's loss (to its 4 decimals: the logged float32 and the returned float may round apart)
    printed = float(lines[0].split("loss ")[1].split(",")[0])
    assert printed == pytest.approx(losses[0], abs=1.5e-4) and "images/s" in lines[0]
    assert "left" in lines[0] and "left" not in lines[-1]


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0 s"), (42, "42 s"), (185, "3 min 05 s")])
def test_durations_read_as_a_person_says_them(seconds, text):
    from vggedge.core.progress import duration

    assert duration(seconds) == text
