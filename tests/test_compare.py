"""`vggedge compare`: one table across recipes and devices; broken reports are rows; HTML is safe."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from vggedge.comparison.html import pareto_front, to_html
from vggedge.comparison.table import collect_rows, recommend

pytestmark = pytest.mark.slow


def test_compare_all_recipes_writes_md_csv_html(cli, all_runs, tmp_path):
    result = cli("compare", all_runs, "--out", tmp_path, "--format", "csv")
    assert result.code == 0, result.err
    rows = list(csv.DictReader((tmp_path / "compare.csv").read_text().splitlines()))
    assert rows[0]["recipe"] == "baseline (float32)" and rows[0]["x_smaller"] == "1.0"
    recipes = {row["recipe"] for row in rows[1:]}
    assert {"int8", "fp16", "dynamic", "gap", "gap-int8", "prune", "edge", "int8-qat", "fast"} <= recipes
    int8 = next(row for row in rows if row["recipe"] == "int8")
    report = json.loads((all_runs / "int8" / "report.json").read_text())
    assert float(int8["size_mb"]) == pytest.approx(report["result"]["size_bytes"] / 1e6, abs=1e-3)
    assert float(int8["x_smaller"]) == report["ratios"]["size"]
    features = report["environment"]["cpu_features"]
    assert int8["cpu"] == f"{report['environment']['machine']}: {', '.join(features) or 'no listed speed features'}"
    assert result.out == (tmp_path / "compare.csv").read_text()
    markdown = (tmp_path / "compare.md").read_text()
    assert markdown.startswith("## Recommended") and "| recipe | device |" in markdown
    page = (tmp_path / "compare.html").read_text()
    assert page.count("data:image/png;base64,") == 2  # one device: size and latency plots
    assert page.index("Recommended") < page.index("data:image/png") < page.index("<table")


def test_broken_and_foreign_reports_become_rows(all_runs, tmp_path):
    shutil.copytree(all_runs / "int8", tmp_path / "int8")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "report.json").write_text("{ truncated")
    (tmp_path / "future").mkdir()
    (tmp_path / "future" / "report.json").write_text(json.dumps({"schema": "vggedge.report/2"}))
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "report.json").write_text(json.dumps({"schema": "vggedge.report/1", "recipe": {}}))
    statuses = {row["recipe"]: row["status"] for row in collect_rows([tmp_path])}
    assert statuses["int8"] == "ok"
    assert statuses["broken"] == "unreadable: JSONDecodeError"
    assert statuses["future"] == "unknown schema 'vggedge.report/2'"
    assert statuses["partial"].startswith("broken report: missing")


def test_html_escapes_everything_from_reports(all_runs, tmp_path):
    report = json.loads((all_runs / "int8" / "report.json").read_text())
    report["recipe"]["name"] = "<script>alert(1)</script>"
    report["environment"]["device"] = '"><img src=x onerror=alert(2)>'
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "report.json").write_text(json.dumps(report))
    rows = collect_rows([tmp_path])
    page = to_html(rows, recommend(rows), "budget")
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_pareto_front():
    points = [(10.0, 0.9, 0), (5.0, 0.9, 1), (5.0, 0.95, 2), (1.0, 0.5, 3), (20.0, 0.99, 4)]
    assert pareto_front(points) == {2, 3, 4}


def test_compare_without_reports_is_a_clear_error(cli, tmp_path):
    result = cli("compare", tmp_path)
    assert result.code == 2 and "no report.json under" in result.err
    result = cli("compare", tmp_path / "missing")
    assert result.code == 2 and "does not exist" in result.err


def test_html_without_matplotlib_keeps_the_table(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib' (a device install)")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    rows = [{"recipe": "int8", "device": "pi", "status": "ok", "top1": 0.9, "size_mb": 30.0, "p50_ms": 5.0}]
    page = to_html(rows, recommend(rows), "budget")
    assert "<td data-sort=''>int8</td>" in page and "No plots" in page and "data:image/png" not in page
    assert "90.00%" in page  # percent, as in the plots


def row(recipe, status="ok", size=10.0, p50=5.0, top1=0.95, delta=0.0, device="pi", budget=1.0):  # noqa: ANN001, ANN201
    return {
        "recipe": recipe,
        "status": status,
        "size_mb": size,
        "p50_ms": p50,
        "top1": top1,
        "delta_top1_pts": delta,
        "device": device,
        "budget_pts": budget,
    }


def test_most_accurate_names_the_results_it_cannot_be_told_apart_from():
    """Top-1 changes whose 95% intervals overlap are a tie on these images, and the recommendation says so."""
    rows = [
        {**row("int8", top1=0.96, delta=0.0), "change_ci95_pts": [-0.5, 0.5], "model": "m"},
        {**row("edge", top1=0.955, delta=-0.5), "change_ci95_pts": [-1.5, 0.4], "model": "m"},
        {**row("gap", top1=0.95, delta=-1.0), "change_ci95_pts": [-1.0, -0.6], "model": "m"},
    ]
    best = next(r for r in recommend(rows, max_drop=3.0) if r.goal == "most accurate")
    assert best.recipe == "int8" and best.figure.endswith("; a tie with edge (95% intervals overlap)")
    assert "gap" not in best.figure


def test_recommendations_per_device_and_goal_within_the_budget():
    rows = [
        {
            "recipe": "baseline (float32)",
            "status": "ok",
            "size_mb": 500.0,
            "p50_ms": 50.0,
            "top1": 0.96,
            "device": "pi",
        },
        row("int8", size=138.0, p50=40.0, top1=0.96),
        row("fast", size=4.0, p50=10.0, top1=0.94, delta=-2.0, status="over_budget"),
        row("edge", size=15.0, p50=30.0, top1=0.955, delta=-0.5),
        row("broken", status="failed_export", size=None, p50=None, top1=None, delta=None),
        row("int8", size=138.0, p50=80.0, top1=0.96, device="laptop"),
    ]
    picks = {(r.device, r.goal): r.recipe for r in recommend(rows)}
    assert picks == {
        ("pi", "smallest"): "edge",  # fast is smaller but lost 2 points against a 1-point budget
        ("pi", "fastest"): "edge",
        ("pi", "most accurate"): "int8",
        ("laptop", "smallest"): "int8",
        ("laptop", "fastest"): "int8",
        ("laptop", "most accurate"): "int8",
    }
    relaxed = {(r.device, r.goal): r.recipe for r in recommend(rows, max_drop=3.0)}
    assert relaxed[("pi", "smallest")] == "fast" and relaxed[("pi", "fastest")] == "fast"


def test_baselines_of_the_same_model_data_and_device_are_one_row(all_runs, tmp_path):
    for copy, p50 in (("a", 8.0), ("b", 9.0), ("c", 10.0)):
        report = json.loads((all_runs / "int8" / "report.json").read_text())
        report["baseline"]["latency_ms"]["p50"] = p50
        report["artifacts"] = []  # the TFLite result alone: this test is about the baselines
        (tmp_path / copy).mkdir()
        (tmp_path / copy / "report.json").write_text(json.dumps(report))
    rows = collect_rows([tmp_path])
    baselines = [r for r in rows if r["recipe"] == "baseline (float32)"]
    assert len(baselines) == 1 and len(rows) == 4
    assert baselines[0]["p50_ms"] == 9.0 and baselines[0]["source"] == "3 reports; p50 8.00–10.00 ms"


def test_plot_labels_never_overlap(all_runs):
    """Every recipe of `--recipe all` on one plot: each spot gets a label and no two labels' boxes meet."""
    from vggedge.comparison.html import _overlaps, clusters, scatter_png

    rows = collect_rows([all_runs])
    for key in ("size_mb", "p50_ms"):
        png, boxes = scatter_png(rows, key, key, key)
        usable = [r for r in rows if r.get(key) and r.get("top1") is not None]
        spots = clusters([(r[key], r["top1"] * 100, r["recipe"]) for r in usable])
        assert png and len(boxes) == len(spots) >= 5, (key, len(boxes), len(spots))
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert not _overlaps(a, b, pad=0), (key, a, b)


def test_compare_fits_80_columns(cli, all_runs):
    result = cli("compare", all_runs)  # not a terminal: rich lays out for 80 columns
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    table = [line for line in lines if "ok" in line.split()]
    assert len(table) >= 10 and not any("…" in line for line in table)  # no cut cell
    assert any(line.startswith("  smallest: ") for line in lines)
    assert json.loads(cli("compare", all_runs, "--json").out)["recommendations"][0]["goal"] == "smallest"


def test_optimize_summary_fits_80_columns(all_runs, capsys, tmp_path):
    """Every recipe's row whole in 80 columns, also with the ratios of a tiny model on a fast CPU (the float32
    baseline timed while the machine was busy once made `fast` 143× faster, printed as "143.…")."""
    from vggedge.cli.summary import print_reports

    for report in all_runs.glob("*/report.json"):
        (tmp_path / report.parent.name).mkdir()
        shutil.copy(report, tmp_path / report.parent.name / "report.json")
    fast = json.loads((tmp_path / "fast" / "report.json").read_text())
    baseline, result = fast["baseline"], fast["result"]  # the ratios are read from the figures
    baseline["latency_ms"]["p50"] = result["latency_ms"]["p50"] * 143.47
    baseline["size_bytes"] = result["size_bytes"] * 1234.56
    for artifact in fast["artifacts"][1:]:
        artifact["p50_ms"] = baseline["latency_ms"]["p50"] / 99.96
    (tmp_path / "fast" / "report.json").write_text(json.dumps(fast))
    print_reports(sorted(tmp_path.glob("*/report.json")))  # not a terminal: rich lays out for 80 columns
    lines = capsys.readouterr().out.splitlines()
    table_and_legend = [line for line in lines if not line.startswith("report: ")]  # paths are never folded
    assert max(len(line) for line in table_and_legend) <= 80, max(table_and_legend, key=len)
    names = {path.parent.name for path in all_runs.glob("*/report.json")}
    table = [line.split() for line in lines if line.split() and line.split()[0] in names]
    assert {cells[0] for cells in table} == names  # every recipe name whole, on one line
    assert all(len(cells) == 9 and "…" not in " ".join(cells) for cells in table)  # no cut cell
    [row] = [cells for cells in table if cells[0] == "fast"]
    assert (row[3], row[8]) == ("1235", "143")
    assert [line.split()[8] for line in lines if line.startswith(" fast-")] == ["100.0"] * (len(fast["artifacts"]) - 1)


def test_a_recipe_benched_at_several_thread_counts_is_recommended_with_its_count():
    rows = [
        {**row("int8", size=138.0, p50=40.0, top1=0.96), "threads": 1},
        {**row("int8", size=138.0, p50=22.0, top1=0.96), "threads": 4},
        {**row("edge", size=15.0, p50=30.0, top1=0.955, delta=-0.5), "threads": 4},
    ]
    picks = {r.goal: r.recipe for r in recommend(rows)}
    assert picks["fastest"] == "int8 at 4 threads" and picks["smallest"] == "edge"
