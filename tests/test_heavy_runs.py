"""The suite's own harness: a long run started from a pool thread sees the session's environment, not a variable a
test monkeypatched meanwhile (CI once replayed auto's recipe under another test's training precision)."""

from __future__ import annotations

import sys

from heavy import HeavyRuns


def test_a_run_sees_the_environment_of_the_session_not_of_the_test_running_meanwhile(tmp_path, monkeypatch):
    monkeypatch.setenv("VGGEDGE_TRAINING_PRECISION", "float32")
    runs = HeavyRuns(tmp_path, workers=1)
    try:
        monkeypatch.setenv("VGGEDGE_TRAINING_PRECISION", "mixed_bfloat16")  # a test choosing for itself
        monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
        show = "import os; print(os.environ.get('VGGEDGE_TRAINING_PRECISION'), os.environ.get('TF_CONFIG'))"
        runs.submit("env", [[sys.executable, "-c", show]], tmp_path)
        log = runs.result("env").log.read_text().splitlines()
    finally:
        runs.close()
    assert log[-1] == "float32 None"
