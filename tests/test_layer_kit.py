"""The profiling kit (``vggedge kit``), its timing on the device (``bench --profile``) and the table the search reads
(``optimize --recipe auto --time-on TABLE.json``): real files, real interpreters, the tiny VGG16 and every model form.
Building a kit converts a few dozen models, so the tests that need one are marked slow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import form_kit, suite_forms, tiny_searcher
from tests.conftest import files_under

KEEP = [0, 4]  # levels: full width and half (helpers.KIT_KEEP, as `vggedge kit --keep` takes them)
AUTO_SEARCH_IMAGES = 200


@pytest.fixture(scope="module")
def baseline(tiny_h5):  # noqa: ANN001, ANN201
    from vggedge.models.loading import load_baseline

    return load_baseline(str(tiny_h5), None, None, progress=False)


@pytest.fixture(scope="module")
def kit_command(kit_runs, heavy_runs) -> tuple[Path, str]:  # noqa: ANN001
    """`vggedge kit` on the tiny VGG16 at KIT_KEEP's widths, as a user runs it (one of the suite's long runs, beside
    the tests): (folder, what it printed). The command's own test and the kit's tests read the same folder."""
    return kit_runs / "kit", heavy_runs.result("kit_runs").log.read_text()


@pytest.fixture(scope="module")
def kit(kit_command) -> tuple[Path, dict]:  # noqa: ANN001
    folder, _ = kit_command
    return folder, json.loads((folder / "kit.json").read_text())


@pytest.fixture(scope="module")
def table(kit_runs) -> Path:  # noqa: ANN001
    """The kit profiled at 1 thread by `bench --profile` in the same long run, the table written beside the kit."""
    return kit_runs / "table" / "table-1t.json"


def expected_pieces(anatomy, levels: list[int], heads: int) -> int:  # noqa: ANN001
    """Per conv: one piece per level, times the previous block's levels at a block's first conv (not the model's)."""
    count = 0
    for number, block in enumerate(anatomy.blocks):
        count += len(levels) * (len(levels) if number else 1) + (len(block) - 1) * len(levels)
    return count + heads * len(levels)


@pytest.mark.slow
def test_the_kit_holds_every_piece_at_every_width_as_int8(baseline, kit):  # noqa: ANN001
    from vggedge.device.runtime import find_runtime
    from vggedge.steps.filters import kept_count

    folder, manifest = kit
    anatomy = baseline.anatomy
    assert manifest["heads"] == ["kept", "gap"]  # a flatten head with hidden dense layers: the search may swap it
    assert len(manifest["entries"]) == expected_pieces(anatomy, KEEP, 2)
    calibration = [[w["levels"], w["head"]] for w in manifest["wholes"] if w["role"] == "calibration"]
    assert sorted(calibration) == sorted([[level] * 5, head] for level in KEEP for head in ["kept", "gap"])
    checks = [w["levels"] for w in manifest["wholes"] if w["role"] == "check"]
    assert checks and all(len(set(levels)) > 1 and set(levels) <= set(KEEP) for levels in checks)
    assert all(e["weights"] > 0 for e in manifest["entries"])
    assert sorted(files_under(folder)) == sorted(
        [folder / "kit.json"] + [folder / e["file"] for e in [*manifest["entries"], *manifest["wholes"]]]
    )
    runtime = find_runtime()
    first_of_block2 = anatomy.blocks[1][0]
    last_of_block1 = baseline.model.get_layer(anatomy.blocks[0][-1]).filters
    piece = next(
        e for e in manifest["entries"] if e["segment"] == first_of_block2 and e["in_level"] == 4 and e["out_level"] == 0
    )
    interpreter = runtime.interpreter_class(model_path=str(folder / piece["file"]))
    interpreter.allocate_tensors()
    (given,), (answer,) = interpreter.get_input_details(), interpreter.get_output_details()
    # int8 in and out (no QUANTIZE op of its own), block 1's half width in, block 2's full width out, pooled once.
    assert given["dtype"] == np.int8 and answer["dtype"] == np.int8
    assert given["shape"][-1] == kept_count(last_of_block1, 0.5)
    assert answer["shape"][-1] == baseline.model.get_layer(first_of_block2).filters
    whole = next(w for w in manifest["wholes"] if w["role"] == "calibration")
    interpreter = runtime.interpreter_class(model_path=str(folder / whole["file"]))
    interpreter.allocate_tensors()
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8  # as the search converts a candidate


def test_the_kits_whole_model_is_the_model_and_its_shapes_are_the_searchs(baseline):  # noqa: ANN001
    from vggedge.auto.kit import KitBuilder
    from vggedge.auto.rules import LEVELS
    from vggedge.steps.filters import block_layer_ratios, thin_model

    builder = KitBuilder(baseline.model)
    images = np.random.default_rng(0).uniform(0, 255, (4, *baseline.model.input_shape[1:])).astype(np.float32)
    rebuilt = builder.whole([0] * 5, "kept")
    # At full width every weight is the model's own: the same function, so the pieces are cut from this model.
    assert np.allclose(rebuilt.predict(images, verbose=0), baseline.model.predict(images, verbose=0), atol=1e-6)
    levels = [1, 4, 2, 7, 3]
    thinned, _ = thin_model(baseline.model, block_layer_ratios(baseline.anatomy, [LEVELS[i] for i in levels]))
    shaped = builder.whole(levels, "kept")
    widths = [layer.filters for layer in shaped.layers if hasattr(layer, "filters")]
    assert widths == [int(thinned.get_layer(name).filters) for name in baseline.anatomy.convs]
    gap = builder.whole(levels, "gap")
    assert gap.count_params() < shaped.count_params() and gap.output_shape == shaped.output_shape


@pytest.mark.slow
def test_profiling_the_kit_writes_a_table_that_predicts_the_whole_models(baseline, kit, table):  # noqa: ANN001
    from vggedge.device.latency_table import LatencyTable, piece_keys
    from vggedge.models.anatomy import fingerprint

    _, manifest = kit
    data = json.loads(table.read_text())
    measured = LatencyTable.load(table)
    assert measured.threads == 1
    assert len(measured.entries) == len(manifest["entries"]) and all(ms > 0 for ms in measured.entries.values())
    measured.require(fingerprint(baseline.model), "int8", None)  # the model it was cut from: usable
    # On a uniform shape the prediction is the measured whole model by construction (its residual closes the sum) ...
    for whole in (w for w in data["wholes"] if w["role"] == "calibration"):
        mean = (whole["ms_before"] + whole["ms_after"]) / 2
        assert measured.predict(whole["levels"], whole["head"]) == pytest.approx(mean, rel=1e-3)
    # ... elsewhere it is a prediction, checked against the whole model measured on the same interpreter, with the
    # residual taken at the shape's weights between the uniform shapes around it.
    assert measured.checks and all(c["predicted_ms"] > 0 and c["measured_ms"] > 0 for c in measured.checks)
    for check in measured.checks:
        assert check["predicted_ms"] == pytest.approx(measured.predict(check["levels"], check["head"]), abs=1e-3)
    assert [w for w, _ in measured.residual["gap"]] == sorted(w for w, _ in measured.residual["gap"])
    half = measured.predict([4] * 5, "gap")
    assert half < measured.predict([0] * 5, "gap")  # half the filters in every block: fewer MACs, less time
    keys = piece_keys(measured.model["blocks"], [4] * 5, "gap")
    assert len(keys) == len(baseline.anatomy.convs) + 1 and all(key in measured.entries for key in keys)
    assert data["environment"]["threads"] == 1 and data["environment"]["cpu"]
    assert "device_check" in data["environment"] and data["whole_drift_pct"] >= 0


@pytest.mark.slow
def test_a_table_for_another_model_thread_count_or_level_is_refused(table):  # noqa: ANN001
    from vggedge.core.errors import UserError
    from vggedge.device.latency_table import LatencyTable

    measured = LatencyTable.load(table)
    other = json.loads(json.dumps(measured.model))
    other["blocks"][2][0][1] *= 2  # one conv twice as wide: another model
    with pytest.raises(UserError, match="measured for another model"):
        measured.require(other, "int8", None)
    with pytest.raises(UserError, match="measured at 1 threads, not --threads 2"):
        measured.require(measured.model, "int8", 2)
    with pytest.raises(UserError, match="has no entry"):
        measured.predict([1] * 5, "gap")  # 7/8 is not in a kit of full and half widths


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "is not a latency table"),
        ('{"schema": "vggedge.report/1"}', "is not a latency table (vggedge.latency-table/1)"),
        ('{"schema": "vggedge.latency-table/1", "model": {}}', "a missing or bad field"),
    ],
)
def test_time_on_a_file_that_is_no_table_is_one_line_before_any_work(cli, tiny_h5, tmp_path, content, message):
    path = tmp_path / "table.json"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "out"
    result = cli("optimize", "--recipe", "auto", "--model", tiny_h5, "--out", out, "--time-on", path, "-q")
    assert result.code == 2 and message in result.err, result.err
    assert "Traceback" not in result.err and files_under(out) == []


@pytest.mark.slow
def test_auto_with_a_table_for_another_model_stops_in_one_line(cli, tiny_h5, digits_dir, table, tmp_path):  # noqa: ANN001
    data = json.loads(table.read_text())
    data["model"]["input_shape"] = [64, 64, 3]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    out = tmp_path / "out"
    result = cli(
        "optimize", "--recipe", "auto", "--model", tiny_h5, "--data", digits_dir, "--out", out,
        "--time-on", other, "--search-images", str(AUTO_SEARCH_IMAGES), "-q",
    )  # fmt: skip
    assert result.code == 2 and "was measured for another model" in result.err, result.err
    assert "Traceback" not in result.err and files_under(out) == []


@pytest.mark.slow
def test_the_search_times_every_candidate_from_the_table_and_visits_only_its_levels(
    tiny_h5, digits_dir, table, tmp_path
):  # noqa: ANN001
    from vggedge.auto.rules import LEVELS, SearchOptions
    from vggedge.device.latency_table import LatencyTable

    measured = LatencyTable.load(table)
    auto = SearchOptions(
        search_images=AUTO_SEARCH_IMAGES, minutes=0.3, max_epochs=1, time_on=str(table), max_drop_pts=5
    )
    searcher = tiny_searcher(tiny_h5, digits_dir, tmp_path, 1, auto).searcher
    result = searcher.run()
    assert len(result.candidates) >= 3  # the start, its GAP head and at least one cut
    for c in result.candidates:
        levels = [LEVELS.index(ratio) for ratio in c.block_ratios]
        assert set(levels) <= set(KEEP), c
        if c.screened:  # scored in float only: never timed (tests/test_auto.py checks the screening itself)
            continue
        assert c.timed_on.startswith("table table-1t.json") and c.reference_ms is None
        assert c.latency_ms == pytest.approx(measured.predict(levels, c.head)), c
    assert result.best.quantization == "int8"  # a table times int8 pieces: no other quantization is tried
    assert any(any(c.block_ratios) for c in result.candidates)


@pytest.mark.slow
def test_the_kit_and_profile_commands(cli, kit_command, tiny_h5, tmp_path, monkeypatch):  # noqa: ANN001
    import shutil

    made, printed = kit_command
    manifest = json.loads((made / "kit.json").read_text())
    assert manifest["levels"] == KEEP and f"vggedge bench --profile {made}" in printed
    again = cli("kit", tiny_h5, "--out", made, "-q")
    assert again.code == 2 and "is not an empty folder" in again.err
    bad = cli("kit", tiny_h5, "--out", tmp_path / "k2", "--keep", "1,2/3", "-q")
    assert bad.code == 2 and "the search's levels keep" in bad.err and not (tmp_path / "k2").exists()
    kit = tmp_path / "kit"  # a copy: the default table goes into the kit, and the kit's own test lists its files
    shutil.copytree(made, kit)
    out = tmp_path / "table.json"
    timed = cli("bench", "--profile", kit, "--threads", "1", "--profile-seconds", "0.02", "--out", out, "-q")
    assert timed.code == 0, timed.err
    assert f"--time-on {out}" in timed.out and json.loads(out.read_text())["threads"] == 1
    beside = cli("bench", "--profile", kit, "--threads", "1", "--profile-seconds", "0.02", "-q")
    assert beside.code == 0 and (kit / "table-1t.json").is_file(), beside.err  # the default: in the kit, by threads
    # Not a kit, several thread counts, or an emulator: one line, no table.
    for args, message in [
        (["--profile", tmp_path], "no kit.json there"),
        (["--profile", kit, "--threads", "1,2"], "one thread count per table"),
        (["--profile", kit, tiny_h5], "give no model files"),
    ]:
        refused = cli("bench", *args, "--out", tmp_path / "no.json", "-q")
        assert refused.code == 2 and message in refused.err, refused.err
    import vggedge.device.profile as profile_module

    monkeypatch.setattr(profile_module, "emulation", lambda: "qemu-user")
    emulated = cli("bench", "--profile", kit, "--out", tmp_path / "no.json", "-q")
    assert emulated.code == 2 and "this is an emulator (qemu-user)" in emulated.err
    assert not (tmp_path / "no.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("form", suite_forms())
def test_the_kit_of_every_model_form_is_cut_from_it_and_profiles(form_runs, form):
    """Users' models as they save them (tests/forms.py, trained by the form's run, which also ran `vggedge kit` and
    `bench --profile` on it): the kit's full-width whole model is the loaded model's function, its thinned shapes are
    the search's, and the profiled kit predicts the full-width model and matches the model's fingerprint."""
    from forms import FORMS
    from vggedge.auto.kit import KitBuilder, head_variants
    from vggedge.auto.rules import LEVELS
    from vggedge.device.latency_table import LatencyTable
    from vggedge.models.anatomy import fingerprint
    from vggedge.models.loading import load_baseline
    from vggedge.steps.filters import block_layer_ratios, thin_model

    _, _, preprocess = FORMS[form]
    run = form_runs[form]
    baseline = load_baseline(str(run.parent / f"{form}.keras"), None, preprocess, progress=False)
    builder = KitBuilder(baseline.model)
    images = np.random.default_rng(0).integers(0, 256, (4, *baseline.model.input_shape[1:])).astype(np.float32)
    np.testing.assert_allclose(
        builder.whole([0] * 5, "kept").predict(images, verbose=0), baseline.model.predict(images, verbose=0), atol=1e-5
    )
    levels = [2, 4, 1, 6, 3]
    thinned, _ = thin_model(baseline.model, block_layer_ratios(baseline.anatomy, [LEVELS[i] for i in levels]))
    for head in head_variants(baseline.anatomy):
        shaped = builder.whole(levels, head)
        assert [layer.filters for layer in shaped.layers if hasattr(layer, "filters")] == [
            int(thinned.get_layer(name).filters) for name in baseline.anatomy.convs
        ]
    kit = form_kit(run)
    manifest = json.loads((kit / "kit.json").read_text())
    assert manifest["levels"] == [0] and manifest["heads"] == head_variants(baseline.anatomy)
    table = LatencyTable.load(kit / "table-1t.json")
    table.require(fingerprint(baseline.model), "int8", 1)
    assert len(table.entries) == len(baseline.anatomy.convs) + len(manifest["heads"])
    for head in manifest["heads"]:
        assert table.predict([0] * 5, head) > 0


def test_the_residual_is_linear_in_weights_between_the_uniform_shapes():
    from vggedge.device.latency_table import residual_at

    points = [(100.0, -0.01), (1000.0, 0.05), (4000.0, 0.35)]
    assert residual_at(points, 50) == -0.01 and residual_at(points, 9000) == 0.35  # the nearest end beyond them
    assert residual_at(points, 1000) == pytest.approx(0.05)
    assert residual_at(points, 2500) == pytest.approx(0.2)  # halfway between 0.05 and 0.35
    assert residual_at(points, 550) == pytest.approx(0.02)
