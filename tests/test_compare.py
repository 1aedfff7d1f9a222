"""`vggedge compare`: one table across recipes and devices; broken reports are rows; HTML is safe."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from vggedge.compare import collect_rows, pareto_front, to_html

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
    assert (tmp_path / "compare.md").read_text().startswith("| recipe | device |")
    page = (tmp_path / "compare.html").read_text()
    assert page.count("data:image/png;base64,") == 2


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
    page = to_html(collect_rows([tmp_path]))
    assert "<script>" not in page and "<img src=x" not in page
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
    rows = [{"recipe": "int8", "device": "pi", "top1": 0.9, "size_mb": 30.0, "p50_ms": 5.0}]
    page = to_html(rows)
    assert "<td>int8</td>" in page and "No plots" in page and "data:image/png" not in page
