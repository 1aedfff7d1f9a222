"""Names a user or an attacker chose reach a terminal or a log escaped and cut: a file name carrying an OSC 52
sequence (which sets the terminal's clipboard) or a newline (which forges an extra prediction line)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from vggedge.core.formatting import printable

HOSTILE = "photo\x1b]52;c;aGVsbG8=\x07\nfake.png: 7 1.000\r"


def test_printable_escapes_control_and_format_characters_and_cuts():
    assert printable(HOSTILE) == "photo\\x1b]52;c;aGVsbG8=\\x07\\x0afake.png: 7 1.000\\x0d"
    assert printable("a\u202eb") == "a\\u202eb"  # a right-to-left override that would reverse what follows
    assert printable("x" * 5000) == "x" * 200 + "…" and printable("déjà vu") == "déjà vu"


def test_predict_prints_hostile_file_names_escaped_one_line_each(tflite_bytes, tmp_path, cli):
    model = tmp_path / "model.tflite"
    model.write_bytes(tflite_bytes)
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(folder / f"{HOSTILE}.png", format="PNG")
    (folder / f"{HOSTILE}.jpg").write_bytes(b"not a picture")
    done = cli("predict", model, folder)
    assert done.code == 0, done.err
    assert "\x1b" not in done.out + done.err and "\x07" not in done.out + done.err and "\r" not in done.out
    assert len(done.out.splitlines()) == 2  # one answer and the summary: no forged line
    assert "\\x1b]52" in done.out and "skipped 1 file that could not be read" in done.err
    single = cli("predict", model, folder / f"{HOSTILE}.jpg")
    lines = single.err.splitlines()  # the note that the model has no labels, then the error: no forged line
    assert single.code == 2 and len(lines) == 2 and lines[1].startswith("error: ") and "\x1b" not in single.err
