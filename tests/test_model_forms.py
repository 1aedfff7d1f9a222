"""Every shipped recipe on every model form users bring, trained on the digits: verified, within budget.

The forms (tests/forms.py) are small Keras 3 models with VGG16's conv layout, saved as users save them;
each goes through `vggedge optimize --recipe all` exactly as a user's file would. Like the tiny fixture
they have 1/16 of VGG16's filters, so they run under TINY_MAX_DROP (conftest) rather than the default
budget, which is measured on full-width models.
"""

from __future__ import annotations

import json

import pytest

from conftest import TEST_SEED, TINY_MAX_DROP, record_figure, run_cli
from forms import FORMS, binary_digits, train_form

pytestmark = pytest.mark.slow

RECIPES = ["fp16", "dynamic", "int8", "int8-qat", "prune", "gap", "gap-int8", "edge", "fast"]


@pytest.fixture(scope="module")
def form_runs(digits_dir, tmp_path_factory):  # noqa: ANN001, ANN201
    """{form: (run folder, data folder)} after `optimize --recipe all` on each trained form."""
    from vggedge.data import load_folder

    root = tmp_path_factory.mktemp("form-runs")
    binary = binary_digits(digits_dir, root / "binary-digits")
    runs = {}
    for name, (_, is_binary, preprocess) in FORMS.items():
        data = binary if is_binary else digits_dir
        model = train_form(name, load_folder(data, 32, progress=False), seed=TEST_SEED)
        path = root / f"{name}.keras"
        model.save(path)
        extra = ["--preprocess", preprocess] if preprocess else []
        code = run_cli(
            "optimize",
            "--recipe",
            "all",
            "--model",
            path,
            "--data",
            data,
            "--out",
            root / name,
            "-q",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--eval-samples",
            "300",
            "--seed",
            str(TEST_SEED),
            "--max-drop",
            str(TINY_MAX_DROP),
            *extra,
        )
        assert code == 0, name
        runs[name] = root / name
    return runs


@pytest.mark.parametrize("form", list(FORMS))
def test_every_recipe_works_on_every_form(form_runs, form):
    for recipe in RECIPES:
        report = json.loads((form_runs[form] / recipe / "report.json").read_text())
        result = report["result"]
        record_figure(f"form {form} {recipe}: top-1 delta pts", report["ratios"]["top1_delta_pts"])
        assert result["status"] == "ok", (recipe, report["notes"])
        assert result["verification"]["agreement"] >= 0.97, recipe
        assert report["baseline"]["top1"] >= 0.85, recipe  # the form learned its task
        assert report["model"]["anatomy"]["vgg16"], recipe


def test_head_swap_keeps_the_output_kind(form_runs):
    """GAP + dense head: the hidden layers go; sigmoid and softmax outputs stay as they were."""
    gap = json.loads((form_runs["gap_dense_functional"] / "gap" / "report.json").read_text())["recipe"]["steps"][0]
    assert gap["replaced"]["kind"] == "gap" and len(gap["replaced"]["hidden"]) == 2 and gap["removed_params"] > 0
    sigmoid = json.loads((form_runs["nested_frozen"] / "gap" / "report.json").read_text())
    assert sigmoid["model"]["anatomy"]["activation"] == "sigmoid" and sigmoid["model"]["classes"] == 2
