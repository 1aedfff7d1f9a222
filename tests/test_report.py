"""The report's one JSON path: every report written reads back to the same objects, old ones too."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from vggedge.core.report import (
    REPORT_SCHEMA,
    BaselineFigures,
    DatasetSection,
    Environment,
    Latency,
    ModelSection,
    RecipeSection,
    Report,
    ResultFigures,
    Verification,
    render_markdown,
)

EXAMPLE = Path(__file__).parents[1] / "examples" / "sample-int8" / "report.json"


def small_report() -> Report:
    return Report(
        recipe=RecipeSection(name="int8", quantization="int8", steps=[{"type": "quantize", "mode": "int8"}]),
        model=ModelSection(source="sample", input_shape=[32, 32, 3], classes=10, params=1000),
        dataset=DatasetSection(name="digits", classes=10, eval_samples=360),
        environment=Environment(device="vm", cpu_features=["avx2"], machine="x86_64"),
        baseline=BaselineFigures(format="keras float32", size_bytes=4000, top1=0.98, latency_ms=Latency(10.0, 12.0, 5)),
        result=ResultFigures(
            size_bytes=1000,
            top1=0.97,
            latency_ms=Latency(2.0, 3.0, 5),
            verification=Verification(360, 0.99, 0.97, True),
        ),
    )


def test_round_trip_through_json_is_lossless(tmp_path):
    report = small_report()
    path = report.write(tmp_path)
    again = Report.load(path)
    assert again == report
    assert (tmp_path / "report.md").read_text() == render_markdown(report)


def test_ratios_are_derived_not_stored():
    report = small_report()
    assert (report.ratios.size, report.ratios.speedup, report.ratios.top1_delta_pts) == (4.0, 5.0, -1.0)
    data = report.to_dict()
    data["ratios"] = {"size": 99.0, "speedup": 99.0, "top1_delta_pts": 99.0}  # a hand-edited file cannot lie
    assert Report.from_dict(data).ratios.size == 4.0


def test_the_committed_example_reads_with_every_key_kept():
    """A report written by an earlier version of /1 reads; writing it again keeps every key it had."""
    data = json.loads(EXAMPLE.read_text())
    report = Report.from_dict(data)
    assert report.result.latency_ms.p50 == data["result"]["latency_ms"]["p50"]
    assert report.environment.cpu_features == data["environment"]["cpu_features"]

    def keys(tree: object, prefix: str = "") -> set[str]:
        if not isinstance(tree, dict) or prefix.endswith(("anatomy", "steps")):
            return set()
        return {prefix + k for k in tree} | {x for k, v in tree.items() for x in keys(v, f"{prefix}{k}.")}

    assert keys(data) <= keys(report.to_dict())


def test_missing_keys_read_as_null_and_unknown_keys_are_ignored():
    data = small_report().to_dict()
    del data["result"]["gzip_bytes"]
    data["result"]["from_the_future"] = 1
    report = Report.from_dict(data)
    assert report.result.gzip_bytes is None and not hasattr(report.result, "from_the_future")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"schema": "vggedge.report/0"}, ValueError),
        ([], TypeError),
        ({"schema": REPORT_SCHEMA, "recipe": "int8"}, TypeError),
    ],
)
def test_foreign_or_malformed_reports_raise(data, error):
    with pytest.raises(error):
        Report.from_dict(data)


def test_report_md_steps_are_labelled_lines_and_a_widths_table_not_dicts():
    """A person reads each step: its settings, what it cut (a table), its fine-tune's loss (first → last and a
    curve, flagged when it rose at the end or never moved), its checks; the full record stays in report.json."""
    from vggedge.core.report import Report, render_markdown

    report = Report.load(EXAMPLE)
    report.recipe.steps = [
        {
            "type": "filter-prune",
            "block_ratios": [0.5, 0.5, 0.5, 0.5, 0.5],
            "epochs": 6,
            "filters": {"block1_conv1": [64, 32], "block5_conv3": [512, 256]},
            "macs_before": 664_000_000,
            "macs_after": 170_000_000,
            "loss_per_epoch": [1.107, 0.766, 0.495, 0.425, 0.368, 0.869],
            "inference_check": {"top1": 0.5, "images": 64},
            "targets": {"fine": {"nested": 1}},
        },
        {"type": "head", "train": "distill", "epochs": 3, "loss_per_epoch": [0.5135, 0.5135, 0.5135]},
        {"type": "head", "epochs": 3, "loss_per_epoch": [0.62993, 0.62992, 0.62991], "loss_floor": 0.6299},
    ]
    steps = render_markdown(report).split("## Steps")[1].split("## Environment")[0]
    assert "1. **filter-prune** (block_ratios=[0.5, 0.5, 0.5, 0.5, 0.5], epochs=6)" in steps
    assert "| block5_conv3 | 512 | 256 |" in steps
    assert "MACs per image: 664.0 M → 170.0 M (3.91× fewer)" in steps
    assert "loss 1.107 → 0.869" in steps and "rose at the end: lowest 0.368 at epoch 5" in steps
    assert "inference-mode check: top1 0.5, images 64" in steps
    assert "loss 0.5135 → 0.5135" in steps and "flat and stuck: 0.5135 for all 3 epochs, 0.513 above" in steps
    assert "(flat at its floor 0.6299, the teacher's own entropy: converged from the start)" in steps
    assert "also in report.json: targets" in steps
    assert "{'" not in steps  # no Python dict dumped


def test_report_md_says_what_ok_means_where_latency_was_measured_and_what_is_next():
    """A newcomer reads the budget and the verification bar that `ok` was judged against, that the latency is this
    workstation's (not the board's), and the next step; no Python reprs, and the vggedge that made it."""
    from pathlib import Path

    from vggedge.core.report import Report, render_markdown
    from vggedge.core.version import __version__
    from vggedge.device.environment import describe_environment

    report = Report.load(Path(__file__).parents[1] / "examples" / "sample-int8" / "report.json")
    report.environment = describe_environment(None, 2)
    page = render_markdown(report)
    assert "at least 97.00% of the evaluation images" in page and "at most 1 point (default) below" in page
    assert "not on a device: `vggedge bench` measures them on the board" in page
    assert "Next: copy `model.tflite` and `labels.txt` to the board" in page
    assert f"- vggedge: {__version__}" in page and "None" not in page and "['" not in page
    assert "replica(s)" not in page


def test_no_committed_report_sits_where_the_readme_commands_write():
    """`vggedge compare reports/` after a newcomer's first run shows that run only: the committed example reports
    (made on other machines) live in examples/, not under reports/."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).parents[1]
    tracked = subprocess.run(["git", "ls-files", "reports"], cwd=root, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    assert not [name for name in tracked if name.endswith("report.json")]
    assert (root / "examples" / "sample-int8" / "report.json").is_file()


def test_the_search_trace_renders_from_typed_candidates_and_from_an_older_reports_records():
    from vggedge.core.candidate import Candidate
    from vggedge.core.report import search_markdown

    measured = Candidate(
        iteration=1, changed_block=2, block_ratios=[0, 0.5, 0, 0, 0], head="kept", quantization="int8",
        latency_ms=3.2, size_bytes=1_000_000, macs=1, weights=1, search_top1=0.9, drop_pts=0.5, lost=2, gained=1,
        screened=True,
    )  # fmt: skip
    older = {"iteration": 0, "block_ratios": [0.0] * 5, "head": "kept", "quantization": "int8", "latency_ms": 4.0,
             "search_top1": 0.91, "drop_pts": 0.0}  # fmt: skip
    rows = search_markdown({"candidates": [dataclasses.asdict(measured), older], "pareto": [0]})[-2:]
    assert rows[0] == (
        "| 0 | search | 1 | 2 | 1 0.5 1 1 1 | kept · int8 | 3.20 ms | — | 1.00 MB | 90.00% | -0.50 | 2 · 1 "
        "| ★ screened in float |"
    )
    assert "| 0 | — | 1 1 1 1 1 |" in rows[1] and "| +0.00 | — |" in rows[1] and "None" not in rows[1]
