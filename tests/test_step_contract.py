"""The contract every registered step type keeps, run over STEP_TYPES: a new step is covered with no edit here.

Each step type's docstring example (the TOML block) is checked and applied to a small VGG16:
- ``check`` accepts the model with enough data and returns an anatomy; with no images at all it refuses
  (UserError) before any work, since every example learns from or calibrates on images;
- ``apply`` leaves the model it was given untouched (weights and layers) and returns a record naming its type.
"""

from __future__ import annotations

import numpy as np
import pytest

from vggedge.core.errors import UserError
from vggedge.models.anatomy import Anatomy, find_anatomy
from vggedge.models.vgg import VGGSpec, build_vgg16
from vggedge.recipe.schema import STEP_TYPES
from vggedge.steps import DataCounts, StepContext, apply_step, check_step

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("step_type", sorted(STEP_TYPES))
def test_step_contract(step_type, digits):
    step = STEP_TYPES[step_type].example()
    if (getattr(step, "epochs", None) or 0) > 2:
        # An untrained model on 64 images barely moves its loss; three flat epochs would stop a cut-then-train
        # step by its own rule (tests/test_convergence.py), which is not this contract's business
        step = step.model_copy(update={"epochs": 2})
    model = build_vgg16(
        VGGSpec(input_size=32, classes=10, width=1 / 16, dense_units=32, preprocess="unit"), initializer="he_normal"
    )
    anatomy = find_anatomy(model)
    assert isinstance(check_step(step, anatomy, DataCounts(train=10**6, calibration=10**6)), Anatomy)
    with pytest.raises(UserError):
        check_step(step, anatomy, DataCounts(train=0, calibration=0))

    before = [w.copy() for w in model.get_weights()]
    names = [layer.name for layer in model.layers]
    context = StepContext(digits.train.first(64), digits.train.labels[:64], progress=False)
    result = apply_step(step, model, context)
    assert result.record["type"] == step_type
    assert [layer.name for layer in model.layers] == names
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert result.model.output_shape == model.output_shape
