"""vggedge: make VGG16 small and fast for edge devices.

On the workstation (``pip install vggedge[optimize]``)::

    import vggedge
    results = vggedge.optimize("model.keras", recipe="int8", data="photos/")   # list[vggedge.Result]
    best = vggedge.search("model.keras", data="photos/", goal="latency")       # --recipe auto

On the device (no TensorFlow)::

    from vggedge import Classifier
    Classifier("reports/int8/model.tflite").predict("photo.jpg")               # [(label, score), ...]

Everything here is imported on first use, so ``import vggedge`` stays instant and never pulls in TensorFlow or
an interpreter. The errors (:class:`UserError` and its kinds) are plain exceptions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from vggedge.core.errors import DataError, DeviceError, ModelError, OutputError, RecipeError, UserError
from vggedge.core.version import __version__

if TYPE_CHECKING:
    from vggedge.api import bench, compare, optimize, search
    from vggedge.comparison import Comparison
    from vggedge.core.result import Result
    from vggedge.device.bench import BenchOutput
    from vggedge.device.classifier import Classifier
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

_LAZY = {
    "optimize": "vggedge.api",
    "search": "vggedge.api",
    "bench": "vggedge.api",
    "compare": "vggedge.api",
    "Result": "vggedge.core.result",
    "Comparison": "vggedge.comparison",
    "BenchOutput": "vggedge.device.bench",
    "Classifier": "vggedge.device.classifier",
    "Recipe": "vggedge.recipe.schema",
    "Step": "vggedge.recipe.schema",
    "QuantizeStep": "vggedge.recipe.schema",
    "PruneStep": "vggedge.recipe.schema",
    "FilterPruneStep": "vggedge.recipe.schema",
    "HeadStep": "vggedge.recipe.schema",
    "load_recipe": "vggedge.recipe.schema",
    "shipped_recipes": "vggedge.recipe.schema",
}

__all__ = [*_LAZY, "__version__", "UserError", "DataError", "ModelError", "RecipeError", "OutputError", "DeviceError"]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # once: a later access is a plain attribute
        return value
    raise AttributeError(f"module 'vggedge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
