"""``vggedge inspect``: how vggedge reads a model, and which shipped recipes apply to it (checked exactly as
``optimize`` checks them before any work)."""

from __future__ import annotations

from pathlib import Path

from vggedge.models.loading import Baseline


def inspect_model(
    model: str, weights: str | None, preprocess: str | None, cache: Path, offline: bool = False
) -> tuple[dict, Baseline]:
    """(facts for people and machines, the loaded baseline): parts, parameters, FLOPs, preprocessing,
    normalization, frozen layers, and per shipped recipe whether it applies and why not."""
    from vggedge.models.flops import flops
    from vggedge.models.loading import load_baseline
    from vggedge.recipe.schema import load_recipe, shipped_recipes
    from vggedge.steps import DataCounts, check_recipe
    from vggedge.steps.context import frozen_layers

    if model == "sample":
        from vggedge.models.sample import load_sample_dataset

        baseline = load_baseline("sample", None, None, load_sample_dataset(cache, progress=False), False, cache)
    else:
        baseline = load_baseline(model, weights, preprocess, progress=False, offline=offline)
    anatomy = baseline.anatomy
    enough = DataCounts(train=10**9, calibration=10**9)  # the model alone decides here; optimize also checks the data
    recipes = {}
    for name in shipped_recipes():
        try:
            check_recipe(load_recipe(name), anatomy, enough)
            recipes[name] = None
        except Exception as error:  # noqa: BLE001 - a refusal is what this command reports
            recipes[name] = str(error)
    facts = {
        "model": baseline.source,
        "input_shape": list(baseline.model.input_shape[1:]),
        "params": int(baseline.model.count_params()),
        "flops": flops(baseline.model),
        "preprocess": baseline.preprocess_note,
        "translation": baseline.translation,
        "anatomy": anatomy.describe(),
        "normalization": baseline.normalization,
        "frozen": frozen_layers(baseline.model),
        "recipes": {name: {"applies": why is None, "why_not": why} for name, why in recipes.items()},
    }
    return facts, baseline
