"""Every shipped recipe on every model form users bring, trained on the digits: verified, within budget.

The forms (tests/forms.py) are small Keras 3 models with VGG16's conv layout, saved as users save them;
each goes through `vggedge optimize --recipe all` exactly as a user's file would, in its own process
(conftest's `form_runs`, with fine-tunes cut to FORM_MAX_EPOCHS). They have 1/4 of VGG16's width, so
they run under TINY_MAX_DROP (conftest) rather than the default budget, which is measured on full-width
models.
"""

from __future__ import annotations

import json

import pytest

from helpers import FORM_MAX_EPOCHS, check_artifacts, record_figure, suite_forms

pytestmark = pytest.mark.slow

RECIPES = ["fp16", "dynamic", "int8", "int8-qat", "prune", "gap", "gap-int8", "edge", "fast"]


@pytest.mark.parametrize("form", suite_forms())
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


def test_fine_tunes_are_cut_as_asked_and_say_so(form_runs):
    """`--max-epochs`: every step trains at most that long, the saved recipe shows it, the notes say it."""
    for recipe in ("fast", "edge", "prune", "gap", "int8-qat"):
        report = json.loads((form_runs["gap_dense_functional"] / recipe / "report.json").read_text())
        epochs = [step["epochs"] for step in report["recipe"]["steps"] if step.get("epochs") is not None]
        assert epochs and max(epochs) <= FORM_MAX_EPOCHS, (recipe, epochs)
        cut = any(f"at most {FORM_MAX_EPOCHS} epochs" in note for note in report["notes"])
        assert cut == (recipe != "int8-qat"), (recipe, report["notes"])  # int8-qat's one epoch was not cut
        saved = (form_runs["gap_dense_functional"] / recipe / "recipe.toml").read_text()
        assert f"epochs = {max(epochs)}" in saved


def test_the_batch_norm_form_reads_the_same_from_keras_and_keras2_h5(tmp_path):
    """VGG16-BN saved by Keras 3 (.keras) and by Keras 2 (.h5): both load, every normalization is accounted
    for, and the two files give the same outputs."""
    import numpy as np

    from forms import batch_norm, keras2_h5
    from vggedge.models.loading import load_model_file

    batch_norm().save(tmp_path / "batch_norm.keras")
    keras2_h5(tmp_path / "batch_norm.keras", tmp_path / "batch_norm.h5")
    keras_file = load_model_file(tmp_path / "batch_norm.keras", None)
    h5_file = load_model_file(tmp_path / "batch_norm.h5", None)
    assert len(keras_file.normalization) == len(h5_file.normalization) == 14  # 13 convolutions, the hidden dense
    assert keras_file.describe().anatomy["normalization"] == keras_file.normalization
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(
        keras_file.model.predict(images, verbose=0), h5_file.model.predict(images, verbose=0), atol=1e-5
    )


@pytest.mark.parametrize("form", suite_forms())
def test_every_form_is_written_in_every_format_and_each_is_verified(form_runs, form, digits_dir):
    """`--formats all` on every form a user brings (Sequential, functional, a nested frozen base, BatchNormalization,
    sigmoid and softmax heads, preprocessing inside): every recipe's ONNX file and OpenVINO IR verified by the run
    against the same Keras model as its TFLite file, each `ok`; and the device side loads each of int8's files
    and gives the TFLite model's classes."""
    from forms import FORMS
    from vggedge.core.data import load_all
    from vggedge.core.metrics import as_class_scores, top1_classes
    from vggedge.device.models import load

    for recipe in RECIPES:
        report = json.loads((form_runs[form] / recipe / "report.json").read_text())
        check_artifacts(form_runs[form] / recipe, report)
        for row in report["artifacts"]:
            name = f"form {form} {recipe} {row['format']}: verification agreement"
            record_figure(name, row["verification_agreement"])
    data = form_runs[form].parent / "binary-digits" if FORMS[form][1] else digits_dir  # what it was trained on
    _, split, _ = load_all(data, 32, progress=False, limit=60)
    classes = {}
    for row in json.loads((form_runs[form] / "int8" / "report.json").read_text())["artifacts"]:
        model = load(form_runs[form] / "int8" / row["file"], threads=1)
        classes[row["format"]] = top1_classes(as_class_scores(model.predict(split.images)))
    for name, answers in classes.items():
        agreement = float((answers == classes["tflite"]).mean())
        assert agreement >= 0.9, (name, agreement)  # int8 against int8 from another quantizer, on 60 images
