"""Steps several recipes of one run begin with are applied once (vggedge.steps.shared), for the chief and
for a distributed run's workers alike, and let go after their last user."""

from __future__ import annotations

import dataclasses

import pytest

from vggedge import steps as pipeline  # apply_steps and the apply_step it calls
from vggedge.recipe.schema import load_recipe, shipped_recipes
from vggedge.steps.context import StepResult
from vggedge.steps.shared import SharedSteps, prefix_key


class Model:
    """A stand-in for a Keras model: the steps it went through."""

    def __init__(self, history: tuple[str, ...] = ()) -> None:
        self.history = history


@pytest.fixture
def applied(monkeypatch):  # noqa: ANN001, ANN201
    """Every step apply_steps runs, as (step type, seed), with a fake step that appends to the model's history."""
    calls: list[tuple[str, int]] = []

    def fake_apply_step(step, model, context):  # noqa: ANN001, ANN202
        calls.append((step.type, context.seed))
        return StepResult(Model((*model.history, step.type)), {"type": step.type, "seed": context.seed})

    monkeypatch.setattr(pipeline, "apply_step", fake_apply_step)
    return calls


@dataclasses.dataclass
class Context:
    """What apply_steps reads of a StepContext: the seed it replaces per step."""

    seed: int = 0


def run_all(recipes, shared):  # noqa: ANN001, ANN201
    return {recipe.name: pipeline.apply_steps(recipe, Model(), Context(), 10, shared) for recipe in recipes}


def shipped(max_epochs: int | None = 2) -> list:
    return [load_recipe(name).with_max_epochs(max_epochs) for name in shipped_recipes()]


def test_the_head_step_that_three_recipes_begin_with_is_applied_once(applied):
    recipes = shipped()
    by_name = {recipe.name: recipe for recipe in recipes}
    starts_with_head = [r.name for r in recipes if r.steps[0].type == "head"]
    assert sorted(starts_with_head) == ["edge", "gap", "gap-int8"]
    results = run_all(recipes, SharedSteps(recipes))
    # Once per distinct step, each with its own position's seed; without sharing, once per recipe's step.
    assert applied.count(("head", 10)) == 1
    assert len(applied) == sum(len(r.steps) for r in recipes) - 2
    first = starts_with_head[0]
    for name in starts_with_head[1:]:
        model, records = results[name]
        assert model.history == tuple(step.type for step in by_name[name].steps)
        assert records[0] == {"type": "head", "seed": 10, "shared_with": first}
        assert all("shared_with" not in record for record in records[1:])
    assert all("shared_with" not in record for record in results[first][1])


def test_without_sharing_every_recipe_applies_every_step(applied):
    recipes = shipped()
    run_all(recipes, None)
    assert len(applied) == sum(len(r.steps) for r in recipes)


def test_a_different_parameter_or_position_is_not_shared(applied):
    gap = load_recipe("gap")
    longer = gap.model_copy(update={"name": "gap-long", "steps": [gap.steps[0].model_copy(update={"epochs": 3})]})
    int8, prune = load_recipe("int8"), load_recipe("prune")  # the same quantize step, at position 1 and at 2
    recipes = [gap, longer, int8, prune]
    shared = SharedSteps(recipes)
    assert shared.last_user == {}
    run_all(recipes, shared)
    assert len(applied) == 5
    assert prefix_key(gap, 1) != prefix_key(longer, 1)


def test_a_kept_prefix_is_let_go_after_its_last_user(applied):
    recipes = [load_recipe(name) for name in ("gap", "int8", "gap-int8", "fp16")]
    shared = SharedSteps(recipes)
    for recipe in recipes:
        pipeline.apply_steps(recipe, Model(), Context(), 0, shared)
        holding = {kept.owner for kept in shared.kept.values()}
        assert holding == ({"gap"} if recipe.name in ("gap", "int8") else set()), recipe.name


def test_a_failed_step_is_not_shared(applied, monkeypatch):  # noqa: ANN001
    recipes = [load_recipe("gap"), load_recipe("gap-int8")]
    shared = SharedSteps(recipes)
    real = pipeline.apply_step

    def failing(step, model, context):  # noqa: ANN001, ANN202
        raise RuntimeError("out of memory")

    monkeypatch.setattr(pipeline, "apply_step", failing)
    with pytest.raises(RuntimeError):
        pipeline.apply_steps(recipes[0], Model(), Context(), 0, shared)
    monkeypatch.setattr(pipeline, "apply_step", real)
    model, records = pipeline.apply_steps(recipes[1], Model(), Context(), 0, shared)
    assert model.history == ("head", "quantize") and "shared_with" not in records[0]


def test_autos_validations_train_their_common_gap_head_once_in_the_searchs_order(applied):
    """``--recipe auto`` builds each validated shape as the found recipe will: the GAP head first (the search's start),
    then the cut refitted against it. Every validation begins with the same head step on the same baseline, so it is
    trained once (seeded as in the final run) and each cut starts from it; a shape with its own head shares nothing."""
    from vggedge.auto.rules import recipe_for
    from vggedge.auto.validation import SharedHead
    from vggedge.core.quantization import Quantization

    shared = SharedHead()
    shapes = [[0.5, 0.5, 0.0, 0.0, 0.0], [0.5, 0.75, 0.5, 0.0, 0.0], [0.0] * 5]
    recipes = [recipe_for(ratios, "gap", Quantization.INT8, 3.0) for ratios in shapes]
    assert [step.type for step in recipes[0].steps] == ["head", "filter-prune", "quantize"]
    assert [step.type for step in recipes[2].steps] == ["head", "quantize"]
    models = [pipeline.apply_steps(recipe, Model(), Context(), 10, shared)[0] for recipe in recipes]
    assert applied.count(("head", 10)) == 1 and applied.count(("filter-prune", 11)) == 2, applied
    assert [model.history for model in models] == [
        ("head", "filter-prune", "quantize"),
        ("head", "filter-prune", "quantize"),
        ("head", "quantize"),
    ]
    kept = recipe_for(shapes[0], "kept", Quantization.INT8, 3.0)
    assert pipeline.apply_steps(kept, Model(), Context(), 10, shared)[0].history == ("filter-prune", "quantize")
    assert applied.count(("filter-prune", 10)) == 1  # the kept head's cut is the recipe's first step
