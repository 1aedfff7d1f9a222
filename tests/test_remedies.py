"""The accuracy-aware end: a recipe that misses tries keep-float, then a gentler cut, in that order, within a time
cap; every try is recorded; the first ok one becomes the run's result; a note never suggests what was tried."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import TEST_SEED
from vggedge.recipe.schema import Recipe, load_recipe
from vggedge.run.remedies import tried_note


def test_a_gentler_cut_halves_every_filter_cut_and_leaves_other_recipes_alone():
    fast = load_recipe("fast").with_gentler_cut()
    assert fast is not None and fast.steps[0].ratio == 0.25 and fast.steps[1:] == load_recipe("fast").steps[1:]
    blocks = Recipe.model_validate(
        {"name": "b", "steps": [{"type": "filter-prune", "block_ratios": [0, 0.5, 0.5, 0.75, 0.75]}]}
    )
    assert blocks.with_gentler_cut().steps[0].block_ratios == [0, 0.25, 0.25, 0.375, 0.375]
    target = Recipe.model_validate({"name": "t", "steps": [{"type": "filter-prune", "flops_target": 0.3}]})
    assert target.with_gentler_cut().steps[0].flops_target == 0.65
    assert load_recipe("int8").with_gentler_cut() is None and load_recipe("gap-int8").with_gentler_cut() is None
    edge = load_recipe("edge").with_gentler_cut()
    assert edge is not None and edge.steps[1].sparsity == 0.35  # tfmot's sparsity halved too


def test_a_quantization_aware_recipe_falls_back_to_post_training_int8():
    from vggedge.run.remedies import with_post_training

    post = with_post_training(load_recipe("int8-qat"))
    assert post is not None and post.steps[-1].mode == "int8" and post.steps[-1].calibration_samples == 100
    assert with_post_training(load_recipe("fast")) is None


def test_the_note_names_auto_and_never_suggests_a_tried_remedy():
    tries = [
        {"remedy": "keep-float", "status": "failed_verification", "top1_change_pts": -5.2},
        {"remedy": "gentler-cut", "status": "over_budget", "top1_change_pts": -2.0},
    ]
    note = tried_note(tries, None, load_recipe("fast"), 1.5)
    assert "keep-float: failed_verification (-5.20 pts); gentler-cut: over_budget (-2.00 pts)" in note
    assert "Next: --recipe auto --max-drop 1.5" in note and "To try" not in note
    assert "a recipe that cuts less than 'fast'" in note
    assert "cuts less" not in tried_note(tries[:1], None, load_recipe("gap-int8"), 1.0)  # it cuts nothing
    chosen = tried_note([{**tries[0], "status": "ok", "top1_change_pts": -0.3}], "keep-float", load_recipe("int8"), 1)
    assert chosen.startswith("the recipe as written missed; the keep-float remedy made this result")


CUT = """schema = "vggedge.recipe/2"
name = "cut"
description = "nine tenths of every conv's filters, then int8"

[[steps]]
type = "filter-prune"
ratio = {ratio}
epochs = {epochs}
learning_rate = {rate}

[[steps]]
type = "quantize"
mode = "int8"
calibration_samples = 100
"""


def run_cut(cli, tiny_h5: Path, digits_dir: Path, out: Path, ratio: float, epochs: int, rate: float, *extra: str):  # noqa: ANN001, ANN201
    recipe = out.parent / f"cut-{out.name}.toml"
    recipe.write_text(CUT.format(ratio=ratio, epochs=epochs, rate=rate))
    done = cli(
        "optimize", "--recipe", recipe, "--model", tiny_h5, "--data", digits_dir, "--out", out, "-q", "--runs", "3",
        "--eval-samples", "360", "--calibration-samples", "100", "--seed", TEST_SEED, "--max-drop", "5", *extra,
    )  # fmt: skip
    return done, json.loads((out / "cut" / "report.json").read_text())


def test_a_cut_that_cannot_recover_tries_each_remedy_in_order_and_names_auto(cli, tiny_h5, digits_dir, tmp_path):
    """90% of the filters and an untrained epoch: the step stops (far under its input on held-apart images), the
    float fallback is not tried (no conversion to fall back from), the gentler cut (45%) is, and fails too."""
    done, report = run_cut(cli, tiny_h5, digits_dir, tmp_path / "runs", 0.9, 1, 1e-9)
    assert done.code == 1
    assert report["result"]["status"] == "failed_export" and "held-apart images" in report["result"]["error"]
    tries = report["remedies"]
    assert [t["remedy"] for t in tries] == ["keep-float", "short-qat", "post-training", "gentler-cut"]
    assert all(t["status"] == "not tried" and "stopped before its conversion" in t["why"] for t in tries[:2])
    assert tries[2]["status"] == "not tried" and "does not train its quantization" in tries[2]["why"]
    assert tries[3]["status"] != "ok" and tries[3]["seconds"] > 0
    stopped = report["recipe"]["steps"][0]  # the recipe as written is what the report shows, its stopped step too
    assert stopped["ratio"] == 0.9 and "held-apart images" in stopped["stopped"]
    assert stopped["inference_check"]["input_agreement"] - stopped["inference_check"]["inference_agreement"] > 0.1
    notes = " ".join(report["notes"])
    assert "Next: --recipe auto --max-drop 5" in notes and "To try: --keep-float" not in notes
    assert not (tmp_path / "runs" / ".remedies" / "cut").exists()  # scratch removed
    assert "## Remedies" in (tmp_path / "runs" / "cut" / "report.md").read_text()


def test_a_gentler_cut_that_recovers_becomes_the_result(cli, tiny_h5, digits_dir, tmp_path):
    """The same cut with a real fine-tune: 90% fails its budget, 45% recovers; the run ships the 45% model, its
    recipe.toml replays it, and the report says which remedy made it."""
    done, report = run_cut(cli, tiny_h5, digits_dir, tmp_path / "runs", 0.9, 2, 2e-3)
    tries = report["remedies"]
    assert tries[-1]["remedy"] == "gentler-cut" and tries[-1]["status"] == "ok", tries
    assert report["result"]["status"] == "ok" and done.code == 0
    assert report["recipe"]["steps"][0]["ratio"] == 0.45
    assert load_recipe(tmp_path / "runs" / "cut" / "recipe.toml").steps[0].ratio == 0.45
    assert any("the gentler-cut remedy made this result" in note for note in report["notes"])
    from vggedge import Result

    result = Result.load(tmp_path / "runs" / "cut")
    assert result.ok and result.remedy == "gentler-cut" and "by the gentler-cut remedy" in repr(result)


def test_no_remedies_and_a_zero_time_cap(cli, tiny_h5, digits_dir, tmp_path):
    _, kept = run_cut(cli, tiny_h5, digits_dir, tmp_path / "off", 0.9, 1, 1e-9, "--no-remedies")
    assert kept["remedies"] is None and kept["result"]["status"] == "failed_export"
    _, capped = run_cut(cli, tiny_h5, digits_dir, tmp_path / "cap", 0.9, 1, 1e-9, "--remedy-minutes", "0")
    assert capped["remedies"][3]["status"] == "not tried" and "time cap" in capped["remedies"][3]["why"]
    bad = cli("optimize", "--recipe", "int8", "--remedy-minutes", "-1", "--out", tmp_path / "bad")
    assert bad.code == 2 and "remedy-minutes" in bad.err and not (tmp_path / "bad").exists()
