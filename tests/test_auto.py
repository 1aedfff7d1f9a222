"""`--recipe auto` on the tiny VGG16: a measured search on a split of its own, a replayable recipe, clear refusals."""

from __future__ import annotations

import json

import pytest

from helpers import AUTO_MAX_DROP, AUTO_SEARCH_IMAGES, AUTO_SEARCH_MINUTES, FORM_MAX_EPOCHS, files_under, tiny_searcher
from vggedge.core.candidate import PASSED_BY_BOTH, PASSED_BY_BOUND

pytestmark = pytest.mark.slow


def report(folder):  # noqa: ANN001, ANN201
    return json.loads((folder / "auto" / "report.json").read_text())


def test_the_search_measures_candidates_and_keeps_the_best_within_budget(auto_runs):
    found = report(auto_runs / "found")
    search = found["search"]
    candidates = search["candidates"]
    # The two starting points and at least one candidate of the first iteration, however busy the machine.
    assert len(candidates) >= 3 and search["complete"]
    start = candidates[0]
    assert start["block_ratios"] == [0.0] * 5 and start["head"] == "kept" and start["iteration"] == 0
    # Screening, decided by measurement: on when converting the start took more than SCREEN_FACTOR float scorings
    # of the search split; a screened candidate was scored in float only, and only a screened shape within the bar
    # was converted after it, in the same iteration.
    screening = search["screening"]
    assert screening["on"] == (screening["convert_s"] > screening["factor"] * screening["float_scoring_s"])
    # A float pass that says "off" is timed once more before it counts, and the faster of the two decides.
    passes = screening["float_passes_s"]
    assert screening["float_scoring_s"] == min(passes)
    assert (len(passes) == 2) == (screening["convert_s"] <= screening["factor"] * passes[0])
    screened = [c for c in candidates if c["screened"]]
    assert bool(screened) == screening["on"]  # the tiny search always gets past its starting points
    assert all(c["quantization"] == "float32" and c["latency_ms"] is None and not c["kept"] for c in screened)
    converted = [c for c in candidates if not c["screened"]]
    for c in converted:
        if (
            screening["on"]
            and c["changed_block"]
            and c["stage"] in ("search", "stretch")
            and c["quantization"] == "int8"
        ):
            bar = search["stretch"]["bar_pts"] if c["stage"] == "stretch" else search["max_drop_pts"]
            assert any(
                s["block_ratios"] == c["block_ratios"] and s["iteration"] == c["iteration"] and s["drop_pts"] <= bar
                for s in screened
            )
    # Timed through the bench server on loopback (--time-on), as on a device: every converted candidate says so.
    assert all(
        c["latency_ms"] > 0 and c["size_bytes"] > 0 and "via http://127.0.0.1:" in c["timed_on"] for c in converted
    )
    assert "via http://127.0.0.1:" in search["latency_from"]
    # One starting point kept (the baseline's shape, or it with the GAP head), then per iteration at most one
    # candidate: within the budget (the stretch: its bar) on the search split and measured faster than the one
    # kept before it.
    stepped = [c for c in candidates if c["kept"] and c["stage"] in ("search", "stretch")]
    assert stepped[0]["iteration"] == 0 and sum(c["iteration"] == 0 for c in stepped) == 1
    assert all(c["drop_pts"] <= search["max_drop_pts"] for c in stepped if c["stage"] == "search")
    assert all(c["drop_pts"] <= search["stretch"]["bar_pts"] for c in stepped)
    # Each step measured faster than the model before it, the two timed side by side (interleaved) on the device.
    assert all(c["speedup"] > 1 and c["reference_ms"] > 0 for c in stepped if c["iteration"] > 0)
    assert all(c["reference_ms"] is not None for c in converted[1:]) and candidates[0]["reference_ms"] is None
    # The path (the GAP swap, then every step) is validated at least once, however short the time: the returned
    # shape is the fastest that passed (its drop plus one standard error within the budget), else the baseline's.
    path = stepped[1:] if stepped[0]["head"] == "kept" else stepped
    validated = [c for c in candidates if c["stage"] == "validated"]
    assert len(validated) == search["validation"]["validations"] >= (1 if path else 0)
    budget = search["max_drop_pts"]
    for c in validated:  # judged on the search split, and on the held-apart images (the digits' calibration split)
        assert c["held_apart_images"] == found["dataset"]["calibration_samples"], c
        both = c["drop_pts"] <= budget and c["held_apart_drop_pts"] <= budget
        assert c["passed"] == (c["drop_bound_pts"] <= budget or both), c
        assert c["passed_by"] == (
            (PASSED_BY_BOUND if c["drop_bound_pts"] <= budget else PASSED_BY_BOTH) if c["passed"] else None
        )
    assert all(c["drop_bound_pts"] > c["drop_pts"] for c in validated)  # the bound adds one standard error
    # The validations' time was kept before the descents began: the planned share of the search's time, from an
    # estimate of one validation, and the time the two parts took adds up to the search's.
    split = search["validation"]["time"]
    total = float(AUTO_SEARCH_MINUTES) * 60
    assert total / 3 - 1e-6 <= split["reserved_s"] <= 2 * total / 3 + 1e-6 and split["validation_estimate_s"] > 0
    assert split["descents_s"] + split["validations_s"] == pytest.approx(search["seconds"], abs=1.0)
    assert (
        "kept for the validations before the descents began" in (auto_runs / "found" / "auto" / "report.md").read_text()
    )
    passed = [c for c in validated if c["passed"]]
    if passed:
        assert search["best"]["block_ratios"] == passed[-1]["block_ratios"]
        assert search["best"]["head"] == passed[-1]["head"]
        assert "validated shape" in search["validation"]["chosen"]
    else:
        assert search["best"]["block_ratios"] == [0.0] * 5 and search["best"]["head"] == "kept"
        assert "starting shape" in search["validation"]["chosen"]
    assert search["pareto"] and all(0 <= i < len(candidates) for i in search["pareto"])
    # The found shape is the run's recipe, and the run was verified like any other.
    steps = {step["type"]: step for step in found["recipe"]["steps"]}
    # The found shape in float16 and dynamic range too, each timed against its int8 side by side: the fastest
    # within the budget is the recipe's quantization (int8 unless one of them was measured faster).
    final = [c for c in candidates if c["quantization"] in ("float16", "dynamic")]
    tried = [c["quantization"] for c in final]
    # float16 first; dynamic after it unless float16 already replaced int8 and the time was up (an AVX2-only CPU,
    # where float16 beats int8: the search does not spend past its time on a second alternative)
    assert tried == ["float16", "dynamic"] or (tried == ["float16"] and search["best"]["quantization"] == "float16")
    assert all(c["block_ratios"] == final[0]["block_ratios"] and c["reference_ms"] > 0 for c in final)
    assert steps["quantize"]["mode"] == search["best"]["quantization"]
    margin = search["final_quantization_margin"]
    if search["best"]["quantization"] != "int8":
        assert search["best"]["speedup"] > margin and search["best"] in final
    else:  # neither alternative both within the budget and measured faster by the margin
        assert all(c["speedup"] <= margin or c["drop_pts"] > search["max_drop_pts"] for c in final)
    if any(search["best"]["block_ratios"]):
        assert steps["filter-prune"]["block_ratios"] == search["best"]["block_ratios"]
    # --max-epochs cut the found recipe's fine-tunes as it cuts the fixed recipes', and the report says so.
    assert all((step.get("epochs") or 0) <= FORM_MAX_EPOCHS for step in found["recipe"]["steps"])
    fine_tuned = any(step.get("epochs") for step in found["recipe"]["steps"])  # the shipped ones: 6 and 20 epochs
    assert any("--max-epochs" in note for note in found["notes"]) == fine_tuned
    assert found["result"]["verification"]["agreement"] >= 0.97
    assert found["result"]["status"] in ("ok", "over_budget")
    assert "## Automatic search" in (auto_runs / "found" / "auto" / "report.md").read_text()


def test_candidates_are_ranked_on_a_split_the_evaluation_never_sees(auto_runs):
    found = report(auto_runs / "found")
    assert found["search"]["images"]["search"] == AUTO_SEARCH_IMAGES
    assert found["dataset"]["eval_samples"] == 360 and found["dataset"]["train_samples"] > AUTO_SEARCH_IMAGES
    assert "never the evaluation images" in found["search"]["ranked_on"]


def test_the_search_split_is_carved_from_training_images_only(digits_dir):
    from vggedge.auto.rules import carve
    from vggedge.core.data import load_folder

    dataset = load_folder(digits_dir, 32, 360, 100, progress=False)
    search, rest = carve(dataset.train, AUTO_SEARCH_IMAGES)
    again, _ = carve(load_folder(digits_dir, 32, 360, 100, progress=False).train, AUTO_SEARCH_IMAGES)
    assert len(search) == AUTO_SEARCH_IMAGES and len(rest) == len(dataset.train) - AUTO_SEARCH_IMAGES
    assert search.keys == again.keys  # deterministic
    held_out = set(dataset.eval.keys) | set(dataset.calibration.keys)
    assert not set(search.keys) & held_out and not set(search.keys) & set(rest.keys)


def test_the_found_recipe_replays_to_the_same_model(auto_runs):
    found, replay = report(auto_runs / "found"), report(auto_runs / "replay")
    assert replay["recipe"]["steps"] == found["recipe"]["steps"]
    assert replay["result"]["top1"] == found["result"]["top1"]
    assert replay["result"]["size_bytes"] == found["result"]["size_bytes"]
    assert replay.get("search") is None  # a replay runs the recipe; it searches nothing


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "DIGITS", "--goal", "speed"], "--goal must be latency or size"),
        (["--data", "DIGITS", "--search-images", "1300"], "carves 1300 search images"),
        ([], "needs a trained model and --data"),  # nothing to rank candidates by
        (["--data", "DIGITS", "--runtime", "tensorrt"], "--runtime: unknown runtime 'tensorrt': choose from litert"),
        (["--data", "DIGITS", "--runtime", "onnxruntime", "--time-on", "t.json"], "its pieces are TFLite models"),
        (["--data", "DIGITS", "--runtime", "openvino", "--time-on", "http://127.0.0.1:9"], "takes one file"),
    ],
)
def test_bad_auto_input_is_one_line_and_writes_nothing(cli, tiny_h5, digits_dir, tmp_path, extra, message):
    out = tmp_path / "out"
    extra = [str(digits_dir) if arg == "DIGITS" else arg for arg in extra]
    result = cli("optimize", "--recipe", "auto", "--model", tiny_h5, "--out", out, "-q", *extra)
    assert result.code == 2, result.err
    assert result.err.strip().splitlines()[-1].startswith("error: ") and message in result.err, result.err
    assert "Traceback" not in result.err and files_under(out) == []


def test_auto_refuses_a_cluster_before_any_work(cli, tiny_h5, digits_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"index": 0}}')
    out = tmp_path / "out"
    result = cli("optimize", "--recipe", "auto", "--model", tiny_h5, "--data", digits_dir, "--out", out)
    assert result.code == 2 and "runs on one machine: unset TF_CONFIG" in result.err, result.err
    assert files_under(out) == []


def test_compare_draws_the_search_trace(auto_runs):
    from vggedge.comparison.html import scatter_png
    from vggedge.comparison.table import collect_rows

    rows = collect_rows([auto_runs / "found"])
    auto = next(row for row in rows if row["recipe"] == "auto")
    assert len(auto["search_trace"]) == len(report(auto_runs / "found")["search"]["candidates"])
    with_trace, _ = scatter_png(rows, "p50_ms", "latency", "t")
    without, _ = scatter_png(
        [{k: v for k, v in row.items() if k != "search_trace"} for row in rows], "p50_ms", "l", "t"
    )
    assert with_trace and without and with_trace != without


def quick_auto_options(model, data, out, search, **more):  # noqa: ANN001, ANN003, ANN201
    """In-process `optimize --recipe auto` on the tiny model: 100 evaluation images, one timed run, quiet."""
    from vggedge.run.options import OptimizeOptions

    return OptimizeOptions(
        model=str(model), data=data, out=out, eval_samples=100, runs=1, warmup=0, progress=False, auto=search, **more
    )


def test_ctrl_c_during_the_search_keeps_only_the_trace_marked_incomplete(tiny_h5, digits_dir, tmp_path, monkeypatch):
    from vggedge.auto.rules import SearchOptions
    from vggedge.auto.searcher import Searcher
    from vggedge.run.auto_run import INTERRUPTED_TRACE
    from vggedge.run.optimize import optimize

    real_measure = Searcher.measure

    def measure_then_ctrl_c(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if len(self.candidates) >= 2:  # the start and its GAP head measured, as a person would press it
            raise KeyboardInterrupt
        return real_measure(self, *args, **kwargs)

    monkeypatch.setattr(Searcher, "measure", measure_then_ctrl_c)
    out = tmp_path / "out"
    options = quick_auto_options(tiny_h5, digits_dir, out, SearchOptions(minutes=1, search_images=AUTO_SEARCH_IMAGES))
    with pytest.raises(KeyboardInterrupt):
        optimize([], options)
    # No model, no report, no scratch: only the trace.
    assert [path.relative_to(out).as_posix() for path in files_under(out)] == [f"auto/{INTERRUPTED_TRACE}"]
    trace = json.loads((out / "auto" / INTERRUPTED_TRACE).read_text())
    assert trace["complete"] is False and trace["stopped"] == "interrupted"
    measured = [c for c in trace["candidates"] if not c["screened"]]  # the rest: screened in float before Ctrl-C
    assert [c["head"] for c in measured] == ["kept", "gap"]
    assert trace["images"]["search"] == AUTO_SEARCH_IMAGES
    assert all(c["latency_ms"] > 0 for c in measured)
    assert all(0 <= c["search_top1"] <= 1 for c in trace["candidates"])


def test_a_validation_builds_the_shape_as_the_final_recipe_does_without_the_search_split(
    tiny_h5, digits_dir, tmp_path, monkeypatch
):
    """The stretch's shape is judged after the found recipe's own steps (same seeds), trained on the training images
    outside the search split, and measured on the search split like any candidate."""
    import numpy as np

    from vggedge import steps as pipeline  # apply_steps and the apply_step it calls
    from vggedge.auto.rules import SearchOptions
    from vggedge.auto.trace import Candidate

    auto = SearchOptions(search_images=AUTO_SEARCH_IMAGES, runs=3, max_epochs=1)  # --max-epochs 1: the mechanism
    built = tiny_searcher(tiny_h5, digits_dir, tmp_path, 1, auto)
    searcher, prepared, search_split, tune, context = (
        built.searcher,
        built.prepared,
        built.search_split,
        built.tune,
        built.context,
    )
    searcher.head = "kept"
    start = searcher.measure(prepared.baseline.model, 0, None, [0] * 5, "kept")
    applied = []
    real_apply = pipeline.apply_step

    def recording(step, model, step_context):  # noqa: ANN001, ANN202
        epochs = getattr(step, "epochs", None)
        applied.append((step.type, epochs, step_context.seed, list(step_context.train.keys), step_context.train_labels))
        return real_apply(step, model, step_context)

    monkeypatch.setattr(pipeline, "apply_step", recording)  # the validation runs the recipe as the pipeline does
    proposal = Candidate(1, 5, [0.0, 0.0, 0.0, 0.0, 0.5], "kept", "int8", 1.0, 1, 1, 1, 0.5, 40.0, stage="stretch")
    shape = searcher.validated(proposal, searcher.last_timed)
    # One filter-prune step, cut to --max-epochs as the found recipe will be and seeded as the pipeline seeds a recipe's
    # first step, on the tune images with their labels.
    assert [(kind, epochs, seed) for kind, epochs, seed, _, _ in applied] == [
        ("filter-prune", 1, context.seed),
        ("quantize", None, context.seed + 1),  # the conversion itself is measure's
    ]
    trained_on = set(applied[0][3])
    assert trained_on == set(tune.keys) and not trained_on & set(search_split.keys)
    assert np.array_equal(applied[0][4], tune.labels)
    # Block 5 at half its filters, measured on the search split and timed beside the starting model.
    last_block = searcher.anatomy.blocks[-1]
    widths = [int(shape.model.get_layer(name).filters) for name in last_block]
    assert widths == [int(prepared.baseline.model.get_layer(name).filters) // 2 for name in last_block]
    c = shape.candidate
    assert c.stage == "validated" and c.block_ratios == proposal.block_ratios and c.latency_ms > 0
    assert c.reference_ms > 0 and c.size_bytes < start.size_bytes and 0 <= c.search_top1 <= 1
    # ... and on the held-apart images (the calibration split), by the same file: its drop there against the baseline
    assert c.held_apart_images == len(prepared.dataset.calibration) and -100 <= c.held_apart_drop_pts <= 100
    assert c.passed == (c.passed_by is not None)
    assert searcher.validations == 1 and searcher.candidates[-1] is c


def test_search_data_is_checked_in_one_line_and_writes_nothing(cli, tiny_h5, digits_dir, tmp_path):
    """--search-data: only with auto, a folder, and the --data's classes (a two-class folder is refused)."""
    out = tmp_path / "out"
    result = cli("optimize", "--recipe", "int8", "--model", tiny_h5, "--search-data", digits_dir, "--out", out, "-q")
    assert result.code == 2 and "use it with --recipe auto" in result.err, result.err
    result = cli("optimize", "--recipe", "auto", "--model", tiny_h5, "--search-data", tmp_path / "none", "--out", out)
    assert result.code == 2 and "is not a folder" in result.err, result.err
    two = tmp_path / "two"
    for name in ("0", "1"):
        (two / name).mkdir(parents=True)
        for image in sorted((digits_dir / name).iterdir())[:5]:
            (two / name / image.name).symlink_to(image)
    result = cli(
        "optimize", "--recipe", "auto", "--model", tiny_h5, "--data", digits_dir, "--search-data", two,
        "--out", out, "-q", "--search-minutes", "0.1",
    )  # fmt: skip
    assert result.code == 2 and "give the same class folders" in result.err, result.err
    assert "Traceback" not in result.err and files_under(out) == []


def test_steps_stopped_by_their_own_checks_leave_the_search_running(tiny_h5, digits_dir, tmp_path, monkeypatch):
    """The GAP start's head step stopped (a weak model's check): the search keeps the model's head and says why;
    every validation's recipe stopped: each is a failed validation with the reason; the run still ends in a report
    (the starting shape), never a traceback (the real-photo VGG16's auto run died of the first before this)."""
    from vggedge.auto import validation
    from vggedge.auto.rules import SearchOptions
    from vggedge.auto.searcher import Searcher
    from vggedge.run.optimize import optimize
    from vggedge.steps import StepStopped
    from vggedge.steps.inference_check import FellShort

    def gap_stops(self, model):  # noqa: ANN001, ANN202
        raise FellShort("head: the fine-tuned model is right on 50% of 64 held-apart images against 73%")

    def recipe_stops(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise StepStopped("FellShort: filter-prune: 40% against 73%", [])

    monkeypatch.setattr(Searcher, "with_gap_head", gap_stops)
    monkeypatch.setattr(validation, "apply_steps", recipe_stops)
    # Every measured cut counts as faster, so the path has a shape to validate on any CPU: a tiny model's timing is
    # noise, and on a slow CPU the half-minute search kept none (one candidate measured 0.94x) and validated nothing.
    monkeypatch.setattr(Searcher, "improves", lambda self, candidate, current: True)
    out = tmp_path / "out"
    search = SearchOptions(minutes=0.5, search_images=AUTO_SEARCH_IMAGES, max_drop_pts=AUTO_MAX_DROP)
    options = quick_auto_options(tiny_h5, digits_dir, out, search, max_drop=AUTO_MAX_DROP)
    [report_path] = optimize([], options)
    report = json.loads(report_path.read_text())
    search = report["search"]
    assert "50% of 64 held-apart images" in search["gap_start_stopped"]
    assert all(c["head"] == "kept" for c in search["candidates"])
    validated = [c for c in search["candidates"] if c["stage"] == "validated"]
    assert validated and all(c["passed"] is False and "40% against 73%" in c["stopped"] for c in validated)
    assert report["result"]["status"] in ("ok", "over_budget", "failed_verification")


def test_with_search_data_steps_check_fine_tunes_on_it_and_validations_judge_on_the_calibration_split(
    tiny_h5, digits_dir, tmp_path
):
    """--search-data is images the baseline never trained on: the steps of the search, its validations and the found
    recipe check their fine-tunes there (the calibration split comes from a training folder the baseline may have
    learned by heart), and the calibration split stays the validations' second, independent look."""
    import dataclasses

    import numpy as np

    from vggedge.auto.rules import SearchOptions, carve
    from vggedge.auto.searcher import Searcher
    from vggedge.run.auto_run import checked_on_search_data
    from vggedge.run.baseline import prepare, step_context
    from vggedge.run.calibration import calibration_images
    from vggedge.run.options import OptimizeOptions

    auto = SearchOptions(search_images=60, runs=1, search_data=digits_dir)
    options = OptimizeOptions(
        model=str(tiny_h5), data=digits_dir, out=tmp_path, eval_samples=100, runs=1, warmup=0, progress=False
    )
    prepared = prepare(dataclasses.replace(options, auto=auto), [])
    search_split, _ = carve(prepared.eval, 60)  # stands for a --search-data folder: images no split trained on
    calibration = prepared.dataset.calibration
    before = step_context(prepared, options)
    assert before.held_apart is calibration  # a run without --search-data: the calibration split

    checked = checked_on_search_data(prepared, search_split, auto, progress=False)
    context = step_context(checked, options)
    assert context.held_apart is search_split and np.array_equal(context.held_apart_labels, search_split.labels)
    assert any("checked their fine-tunes on the 60 --search-data images" in note for note in checked.notes)
    assert (
        checked_on_search_data(prepared, search_split, dataclasses.replace(auto, search_data=None), False) is prepared
    )

    searcher = Searcher(
        prepared.baseline.model,
        *(search_split, prepared.dataset.train, calibration_images(prepared, 50), True, auto, context),
        judged_on=calibration,
    )
    searcher.measure(prepared.baseline.model, 0, None, [0] * 5, "kept")
    drop, images = searcher.held_apart_drop(searcher.last_timed)
    assert images == len(calibration) != len(search_split)
    assert abs(drop) < 5  # the baseline's own int8 file against the baseline, on the calibration split
