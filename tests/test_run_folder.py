"""A report folder is one thing: published whole, locked while a run writes, checked by every reader.

The failures this guards against were seen: two runs into one ``--out`` left one run's report beside the other's
model, and Ctrl-C after ``model.tflite`` was replaced left the new model beside the previous run's report."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from vggedge.core import run_folder
from vggedge.core.errors import UserError
from vggedge.core.run_folder import (
    IncompleteRunFolder,
    clean_stale,
    incomplete_reason,
    output_lock,
    publish,
    staged,
    write_manifest,
)

EXAMPLE_REPORT = Path(__file__).parents[1] / "examples" / "sample-int8" / "report.json"


def folder_with(path: Path, model: bytes, report: Path = EXAMPLE_REPORT) -> Path:
    """A run folder as optimize publishes it: a model, labels, a report, and the completion mark."""
    path.mkdir(parents=True)
    (path / "model.tflite").write_bytes(model)
    (path / "labels.txt").write_text("\n".join(str(i) for i in range(10)) + "\n")
    shutil.copy(report, path / "report.json")
    write_manifest(path)
    return path


def test_a_second_run_into_the_same_folder_is_refused_in_one_line(tmp_path):
    out = tmp_path / "reports"
    with output_lock(out):
        with pytest.raises(UserError, match=r"another vggedge run is writing to .*reports: wait for it") as raised:  # noqa: SIM117
            with output_lock(out):
                pass
        assert "\n" not in str(raised.value)
    with output_lock(out):  # released when the first run ends
        pass
    assert not out.exists()  # made for the run, left empty: removed


def test_the_cli_refuses_a_run_into_a_locked_folder_before_any_work(cli, tmp_path):
    out = tmp_path / "reports"
    with output_lock(out):
        done = cli("optimize", "--recipe", "int8", "--out", out)
    assert done.code == 2 and "another vggedge run is writing to" in done.err and len(done.err.splitlines()) == 1


def test_a_tampered_folder_is_refused_by_classifier_bench_predict_and_compare(tflite_bytes, tmp_path, cli):
    from vggedge import Classifier
    from vggedge.comparison.table import collect_rows

    folder = folder_with(tmp_path / "int8", tflite_bytes)
    assert incomplete_reason(folder) is None
    Classifier(folder / "model.tflite")  # complete: accepted
    (folder / "model.tflite").write_bytes(tflite_bytes + b"\0" * 16)  # another run's model, another size
    with pytest.raises(IncompleteRunFolder, match=r"model.tflite is [\d,]+ bytes where the run wrote [\d,]+"):
        Classifier(folder / "model.tflite")
    from PIL import Image

    Image.new("RGB", (40, 40)).save(tmp_path / "photo.png")
    for command in (
        ("bench", folder / "model.tflite", "--runs", "1"),
        ("predict", folder / "model.tflite", tmp_path / "photo.png"),
    ):
        done = cli(*command)
        assert done.code == 2 and "is not a complete run folder" in done.err, command
    statuses = [row["status"] for row in collect_rows([tmp_path]) if row.get("recipe") == "int8"]
    assert len(statuses) == 1 and statuses[0].startswith("incomplete: model.tflite is"), statuses
    same_size = bytearray(tflite_bytes)
    same_size[-1] ^= 1
    (folder / "model.tflite").write_bytes(bytes(same_size))
    with pytest.raises(IncompleteRunFolder, match="SHA-256 differs"):
        Classifier(folder / "model.tflite")
    (folder / "manifest.json").unlink()
    with pytest.raises(IncompleteRunFolder, match="manifest.json is missing"):
        Classifier(folder / "model.tflite")


def test_a_model_without_its_folder_needs_no_mark(tflite_bytes, tmp_path):
    from vggedge import Classifier

    (tmp_path / "model.tflite").write_bytes(tflite_bytes)  # what a user copies to a board
    Classifier(tmp_path / "model.tflite")


def test_publish_swaps_a_folder_whole_and_an_interrupt_during_it_waits(tmp_path, monkeypatch):
    out = tmp_path / "reports"
    folder_with(out / "int8", b"old model")
    real_rename = os.rename
    renames = []

    def rename_with_ctrl_c(source, target):  # noqa: ANN001
        renames.append(Path(target).name)
        os.kill(os.getpid(), signal.SIGINT)  # arrives between the two renames: held until both are done
        real_rename(source, target)

    with staged(out, "int8") as staging:
        staging.folder.mkdir()
        (staging.folder / "model.tflite").write_bytes(b"new model")
        monkeypatch.setattr(run_folder.os, "rename", rename_with_ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            publish(staging.folder, staging.target)
        monkeypatch.setattr(run_folder.os, "rename", real_rename)
    assert len(renames) == 2 and (out / "int8" / "model.tflite").read_bytes() == b"new model"
    assert incomplete_reason(out / "int8") is None and sorted(p.name for p in out.iterdir()) == ["int8"]


def test_a_kill_between_the_renames_is_undone_and_leftovers_cleared_at_the_next_run(tmp_path):
    out = tmp_path / "reports"
    folder_with(out / ".replaced-int8-0a1b2c3d", b"previous model")  # the kill came after the first rename
    folder_with(out / "fp16", b"fp16 model")
    folder_with(out / ".replaced-fp16-0a1b2c3d", b"older fp16")  # the kill came after the second
    (out / ".staging-int8-99887766" / "int8").mkdir(parents=True)
    (out / ".vggedge-savedmodel-abc123").mkdir()
    done = clean_stale(out)
    assert sorted(p.name for p in out.iterdir()) == ["fp16", "int8"], done
    assert (out / "int8" / "model.tflite").read_bytes() == b"previous model"
    assert (out / "fp16" / "model.tflite").read_bytes() == b"fp16 model"


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.slow
def test_ctrl_c_at_every_write_of_a_rerun_leaves_the_previous_folder_or_the_new_one(
    tiny_h5, digits_dir, tmp_path, monkeypatch, capsys
):
    """A complete int8 folder, then a rerun whose recipe (fp16 weights, named int8) writes a different model, with a
    real SIGINT sent at each of its file writes and renames in turn: every time, ``int8/`` is whole, its report's
    size is its model's, and it is either exactly the previous folder or exactly the new one; nothing else is left."""
    from vggedge.core import atomic
    from vggedge.recipe.schema import load_recipe
    from vggedge.run.baseline import prepare
    from vggedge.run.options import OptimizeOptions
    from vggedge.run.recipe_run import run_recipe

    out = tmp_path / "reports"
    options = OptimizeOptions(
        model=str(tiny_h5), data=digits_dir, out=out, eval_samples=100, runs=1, warmup=0, progress=False
    )
    int8, fp16 = load_recipe("int8"), load_recipe("fp16").model_copy(update={"name": "int8"})
    prepared = prepare(options, [int8, fp16])
    run_recipe(int8, prepared, options)
    previous = digest(out / "int8")
    kept = tmp_path / "previous-int8"
    shutil.copytree(out / "int8", kept)  # to put back after a rerun that got published
    real_replace, real_rename = atomic.os.replace, run_folder.os.rename
    outcomes, write = set(), 0
    while True:
        write += 1
        calls = 0

        def interrupting(original, at=write):  # noqa: ANN001, ANN202
            def call(source, target):  # noqa: ANN001
                nonlocal calls
                calls += 1
                if calls == at:
                    os.kill(os.getpid(), signal.SIGINT)
                return original(source, target)

            return call

        monkeypatch.setattr(atomic.os, "replace", interrupting(real_replace))
        monkeypatch.setattr(run_folder.os, "rename", interrupting(real_rename))
        try:
            run_recipe(fp16, prepared, options)
            interrupted = False
        except KeyboardInterrupt:
            interrupted = True
        finally:
            monkeypatch.setattr(atomic.os, "replace", real_replace)
            monkeypatch.setattr(run_folder.os, "rename", real_rename)
        folder = out / "int8"
        assert incomplete_reason(folder) is None, write
        report = json.loads((folder / "report.json").read_text())
        assert report["result"]["size_bytes"] == (folder / "model.tflite").stat().st_size, write
        state = "previous" if digest(folder) == previous else report["recipe"]["quantization"]
        assert state in ("previous", "float16"), write
        outcomes.add(state)
        said = capsys.readouterr().err
        if interrupted:  # the line says which run the folder now holds
            assert ("keeps the previous complete run" if state == "previous" else "holds this run, complete") in said
        assert sorted(p.name for p in out.iterdir()) == ["int8"], write
        if not interrupted:  # every write of the rerun has had its interrupt
            break
        if state == "float16":  # published: put the previous folder back for the next write's turn
            shutil.rmtree(folder)
            shutil.copytree(kept, folder)
    assert outcomes == {"previous", "float16"} and write > 5
