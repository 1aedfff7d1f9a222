"""Recipes: versioned TOML files of ordered steps (``vggedge.recipe/2``), validated by pydantic.

The step classes are registered in :mod:`~vggedge.recipe.schema`; what each step does lives in
:mod:`vggedge.steps`.
"""

from vggedge.recipe.schema import (
    FilterPruneStep,
    HeadStep,
    PruneStep,
    QuantizeStep,
    Recipe,
    Step,
    load_recipe,
    shipped_recipes,
)

__all__ = [
    "FilterPruneStep",
    "HeadStep",
    "PruneStep",
    "QuantizeStep",
    "Recipe",
    "Step",
    "load_recipe",
    "shipped_recipes",
]
