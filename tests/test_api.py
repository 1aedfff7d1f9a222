"""The Python API: what a notebook user calls, checked as the CLI is (refusals before any work, typed errors,
result objects), and the README's example run as written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import vggedge

ROOT = Path(__file__).parents[1]
EXAMPLE_REPORT = ROOT / "examples" / "sample-int8"


def test_import_is_light_and_the_api_is_documented():
    """`import vggedge` and `help(vggedge.optimize)` never start TensorFlow; every public name resolves."""
    code = textwrap.dedent(
        """
        import sys, pydoc, vggedge
        text = pydoc.render_doc(vggedge.optimize) + pydoc.render_doc(vggedge.search)
        assert "list[Result]" in text and "UserError" in text and "time_on" in text, text[:500]
        for name in vggedge.__all__:
            getattr(vggedge, name)
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras")))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("call", "kind", "message"),
    [
        (lambda: vggedge.optimize(recipe="nope"), vggedge.RecipeError, "unknown recipe 'nope'"),
        (lambda: vggedge.optimize(recipe=["int8", "int8"]), vggedge.RecipeError, "more than once"),
        (lambda: vggedge.optimize(recipe=42), vggedge.RecipeError, "Received: int"),
        (lambda: vggedge.optimize(recipe="int8", goal="size"), vggedge.UserError, "--goal: an option of the automatic"),
        (lambda: vggedge.optimize(recipe="fp16", keep_float="auto"), vggedge.RecipeError, "end in full int8"),
        (lambda: vggedge.optimize(preprocess="imagenet"), vggedge.ModelError, "Received: 'imagenet'"),
        (lambda: vggedge.search(goal="speed"), vggedge.UserError, "--goal must be latency or size"),
        (lambda: vggedge.search(search_data="/nonexistent"), vggedge.DataError, "not a folder"),
        (lambda: vggedge.optimize(model=3.5), vggedge.UserError, "Received: float"),
        (lambda: vggedge.optimize(resize="squash"), vggedge.DataError, "--resize must be stretch"),
    ],
)
def test_bad_input_is_a_typed_error_before_any_work(call, kind, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(kind, match=re.escape(message)):
        call()
    assert not (tmp_path / "reports").exists()  # nothing written
    assert issubclass(kind, vggedge.UserError)


def test_an_unknown_keyword_is_a_type_error_as_in_any_python_function():
    with pytest.raises(TypeError, match="goals"):
        vggedge.optimize(goals="size")


def test_a_result_loads_from_its_folder_and_saves_whole(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(EXAMPLE_REPORT, folder)
    result = vggedge.Result.load(folder)
    assert result.recipe == "int8" and result.status == result.report.result.status
    assert result.ok == (result.status == "ok")
    assert result.model_path is None  # the committed example has no model file: never invented
    (folder / "model.tflite").write_bytes(b"TFL3")
    saved = result.save(tmp_path / "deploy")
    assert saved.model_path == tmp_path / "deploy" / "model.tflite"
    assert sorted(p.name for p in saved.folder.iterdir()) == sorted(p.name for p in folder.iterdir())
    assert "Result('int8', status=" in repr(result) and "x smaller" in repr(result)


def test_compare_returns_a_comparison_that_prints_and_saves(tmp_path, capsys):
    shutil.copytree(EXAMPLE_REPORT, tmp_path / "reports" / "int8")
    comparison = vggedge.compare(tmp_path / "reports")
    assert [row["recipe"] for row in comparison.rows][-1] == "int8"
    assert {r.goal for r in comparison.recommendations} >= {"smallest", "fastest"}
    comparison.print("md")
    assert "| int8 |" in capsys.readouterr().out
    written = comparison.save(tmp_path / "out")
    assert [p.name for p in written] == ["compare.md", "compare.csv", "compare.json", "compare.html"]
    with pytest.raises(vggedge.UserError):
        vggedge.compare(tmp_path / "empty-folder-that-does-not-exist")


def readme_example() -> str:
    """The README's Python example: the first ```python block under '## Python API'."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API") :]
    return section[section.index("```python") + len("```python") : section.index("```", section.index("```python") + 9)]


@pytest.mark.slow
def test_the_readme_notebook_example_runs_as_written(tiny_h5, small_digits_dir, tmp_path):
    """In a fresh process, as in a notebook: a Keras 3 model in memory, two recipes, results printed, the
    deployable one saved, the comparison printed."""
    example = readme_example()
    assert len(example.strip().splitlines()) <= 12
    shutil.copytree(small_digits_dir, tmp_path / "photos")
    setup = f"import keras; keras.models.load_model({str(tiny_h5)!r}).save('my_vgg.keras')\n"
    # As in a notebook: `import keras` first, so TensorFlow starts with Keras 3 before vggedge is imported.
    environment = {name: value for name, value in os.environ.items() if name != "TF_USE_LEGACY_KERAS"}
    done = subprocess.run(
        [sys.executable, "-c", setup + example],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout
    assert re.search(r"Result\('int8', status='(ok|over_budget|failed_verification)'", printed), printed
    assert "Result('fp16', status='ok'" in printed, printed  # float16 weights: the same answers
    assert (tmp_path / "deploy" / "model.tflite").read_bytes()[4:8] == b"TFL3"
    assert {"int8", "fp16"} <= {p.name for p in (tmp_path / "reports").iterdir()}
    assert "Recommended" in printed
    assert not list(Path("/tmp").glob("vggedge-model-*/my_vgg.keras"))  # the in-memory model's file is gone


def test_result_and_comparison_read_like_result_objects():
    """The figures a person asks for are fields, the reprs are short, and a notebook gets an HTML view."""
    import vggedge

    result = vggedge.Result.load(EXAMPLE_REPORT)
    report = result.report
    assert result.size_mb == report.result.size_bytes / 1e6 and result.p50_ms == report.result.latency_ms.p50
    assert result.top1 == report.result.top1 and result.top1_change == report.ratios.top1_delta_pts
    assert result.speedup == report.ratios.speedup and result.smaller == report.ratios.size
    assert "<table>" in result._repr_html_() and "34.09" in result._repr_html_()
    comparison = vggedge.compare(EXAMPLE_REPORT)
    assert len(repr(comparison)) < 200 and repr(comparison).startswith("Comparison(1 result, 1 device")
    assert "<table>" in comparison._repr_html_() and "int8" in comparison._repr_html_()


def test_a_step_built_in_code_with_a_mistake_is_a_recipe_error_in_python_words():
    import vggedge

    with pytest.raises(vggedge.RecipeError, match=r"QuantizeStep: mode: Input should be .*Received: 'int-8'") as raised:
        vggedge.QuantizeStep(mode="int-8")
    assert "pydantic" not in str(raised.value) and "http" not in str(raised.value)
    with pytest.raises(vggedge.RecipeError, match=r"unknown key 'calibraton_samples' \(did you mean 'calibration_sa"):
        vggedge.QuantizeStep(mode="int8", calibraton_samples=5)


def test_a_misspelt_top_level_key_gets_did_you_mean_for_every_field():
    import vggedge
    from vggedge.recipe.schema import recipe_from_dict

    with pytest.raises(vggedge.RecipeError, match=r"unknown key 'resiz' \(did you mean 'resize'\?\)"):
        recipe_from_dict({"name": "x", "resiz": "stretch", "steps": [{"type": "quantize", "mode": "int8"}]})


def test_the_api_and_the_cli_share_one_cache(monkeypatch, tmp_path):
    from vggedge.core.cache import default_cache_dir
    from vggedge.run.options import OptimizeOptions

    monkeypatch.setenv("VGGEDGE_CACHE", str(tmp_path / "shared"))
    assert default_cache_dir() == tmp_path / "shared" and OptimizeOptions().cache == tmp_path / "shared"
    monkeypatch.delenv("VGGEDGE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "vggedge"
