"""Recipes: a versioned file of ordered, typed steps, and the same thing built in Python.

A recipe file (TOML) is a serialization of :class:`Recipe`::

    schema = "vggedge.recipe/1"
    name = "gap-int8"
    description = "Swap the dense head for global average pooling, then full-integer quantization."

    [[steps]]
    type = "head"
    train = "distill"

    [[steps]]
    type = "quantize"
    mode = "int8"

Every step is validated when it is built (unknown keys rejected with a "did you mean", values
range-checked), so a bad recipe fails before any model is loaded. What each step *does* lives in
:mod:`vggedge.steps`; this module only describes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from vggedge.errors import UserError, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

RECIPE_SCHEMA = "vggedge.recipe/1"
# In a wheel the recipes are packaged inside vggedge/; in a source checkout they are at the top level.
_PACKAGED = Path(__file__).resolve().parent / "recipes"
RECIPES_DIR = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parent.parent / "recipes"


class Step(BaseModel):
    """Base of every step: frozen, strict about unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Which optional quantize fields each mode uses, with their defaults. A field given to a mode that
# ignores it is an error (a silent no-op would mislead), and a resolved recipe shows only what its
# mode uses.
QUANTIZE_MODE_FIELDS: dict[str, dict[str, object]] = {
    "dynamic": {},
    "float16": {},
    "int8": {"calibration_samples": 100},
    "int8-qat": {"calibration_samples": 100, "epochs": 1, "learning_rate": 1e-5, "batch_size": 32},
}


class QuantizeStep(Step):
    """Convert to TFLite with quantization; always the last step.

    ``mode``: ``dynamic`` (int8 weights, float activations), ``float16`` (fp16 weights),
    ``int8`` (full integer, per-channel weights, uint8 input, calibrated on ``calibration_samples``
    images of the calibration split), ``int8-qat`` (quantization-aware fine-tuning for
    ``epochs`` on the train split, then full-integer conversion).

    .. code-block:: toml

        [[steps]]
        type = "quantize"
        mode = "int8"
        calibration_samples = 100
    """

    type: Literal["quantize"] = "quantize"
    mode: Literal["dynamic", "float16", "int8", "int8-qat"]
    calibration_samples: Optional[int] = Field(None, ge=1, le=100_000, description="int8 and int8-qat only")
    epochs: Optional[int] = Field(None, ge=1, le=1000, description="fine-tuning epochs, int8-qat only")
    learning_rate: Optional[float] = Field(None, gt=0, lt=1, description="int8-qat only")
    batch_size: Optional[int] = Field(None, ge=1, le=4096, description="int8-qat only")

    @model_validator(mode="before")
    @classmethod
    def _mode_defaults(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("mode") in QUANTIZE_MODE_FIELDS:
            unused = [key for key in ("calibration_samples", "epochs", "learning_rate", "batch_size")
                      if data.get(key) is not None and key not in QUANTIZE_MODE_FIELDS[data["mode"]]]
            if unused:
                raise ValueError(f"{', '.join(unused)} does not apply to mode {data['mode']!r}")
            data = {**QUANTIZE_MODE_FIELDS[data["mode"]], **{k: v for k, v in data.items() if v is not None}}
        return data


class PruneStep(Step):
    """Magnitude pruning (tensorflow-model-optimization) to ``sparsity`` on a polynomial schedule.

    ``layers``: ``dense`` (the hidden dense layers fc1, fc2; the output layer stays whole),
    ``conv`` (the 13 conv layers), ``all`` (every Conv2D and Dense layer), or a regular expression
    matched against layer names. The model is fine-tuned for ``epochs`` on the train split: the
    sparsity ramps up over the first half, the second half recovers, and the rate decays (cosine)
    from ``learning_rate`` to a tenth of it, or stays at it (``learning_rate_schedule = "constant"``:
    conv pruning recovered better so on the sample). Pruning wrappers are stripped before export.

    .. code-block:: toml

        [[steps]]
        type = "prune"
        sparsity = 0.9
        layers = "dense"
        epochs = 2
    """

    type: Literal["prune"] = "prune"
    sparsity: float = Field(ge=0, lt=1)
    layers: str = "dense"
    epochs: int = Field(2, ge=1, le=1000)
    learning_rate: float = Field(1e-5, gt=0, lt=1, description="peak rate (cosine) or the rate (constant)")
    learning_rate_schedule: Literal["cosine", "constant"] = "cosine"
    batch_size: int = Field(32, ge=1, le=4096)


class HeadStep(Step):
    """Replace Flatten -> Dense -> Dense -> output by GlobalAveragePooling2D -> Dense(classes).

    ``train``: ``labels`` (cross-entropy on the train split's labels) or ``distill`` (match the
    original model's outputs, so no labels are needed). ``init``: ``lstsq`` starts the new layer as
    a ridge regression from pooled features to the old model's logits (training-free), ``random``
    from scratch. The conv base stays frozen.

    .. code-block:: toml

        [[steps]]
        type = "head"
        train = "distill"
        epochs = 5
    """

    type: Literal["head"] = "head"
    train: Literal["labels", "distill"] = "distill"
    init: Literal["lstsq", "random"] = "lstsq"
    epochs: int = Field(5, ge=0, le=1000)
    learning_rate: float = Field(1e-3, gt=0, lt=1)
    batch_size: int = Field(32, ge=1, le=4096)


class FilterPruneStep(Step):
    """Structured pruning: remove the ``ratio`` of filters with the smallest L1 norms from each conv
    layer matching ``layers`` (a regular expression), rebuild a thinner VGG16 with the surviving
    weights, and fine-tune it for ``epochs``. Fewer FLOPs, so real speed on any runtime. Instead of
    ``ratio``, ``flops_target`` (the fraction of the model's FLOPs to keep) picks the smallest
    uniform ratio that reaches it.

    .. code-block:: toml

        [[steps]]
        type = "filter-prune"
        ratio = 0.5
        layers = "block[1-5]_conv[0-9]"
        epochs = 6
    """

    type: Literal["filter-prune"] = "filter-prune"
    ratio: Optional[float] = Field(None, ge=0, lt=1)
    flops_target: Optional[float] = Field(None, gt=0, le=1)
    layers: str = r"block[1-5]_conv[0-9]"
    epochs: int = Field(6, ge=0, le=1000)
    learning_rate: float = Field(2e-4, gt=0, lt=1, description="peak rate, cosine-decayed to a tenth")
    batch_size: int = Field(32, ge=1, le=4096)

    @model_validator(mode="after")
    def _one_target(self) -> FilterPruneStep:
        if (self.ratio is None) == (self.flops_target is None):
            raise ValueError("give either ratio or flops_target")
        return self


AnyStep = Annotated[Union[QuantizeStep, PruneStep, HeadStep, FilterPruneStep], Field(discriminator="type")]
STEP_TYPES = {"quantize": QuantizeStep, "prune": PruneStep, "head": HeadStep, "filter-prune": FilterPruneStep}


class Recipe(BaseModel):
    """An ordered list of steps with a name; the unit that ``vggedge optimize --recipe`` runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: Literal["vggedge.recipe/1"] = Field(RECIPE_SCHEMA, alias="schema")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    steps: list[AnyStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _quantize_last(self) -> Recipe:
        for i, step in enumerate(self.steps[:-1]):
            if isinstance(step, QuantizeStep):
                raise ValueError(f"steps[{i}]: a quantize step must be the last step")
        return self

    @property
    def quantization(self) -> str:
        """The TFLite conversion mode: the final quantize step's mode, else float32."""
        last = self.steps[-1]
        return last.mode if isinstance(last, QuantizeStep) else "float32"

    def to_dict(self) -> dict:
        return self.model_dump(by_alias=True, mode="json")

    def to_toml(self) -> str:
        """Serialize back to the recipe file format (saved beside every model it produced)."""
        lines = [f'schema = "{RECIPE_SCHEMA}"', f"name = {_toml_value(self.name)}"]
        lines.append(f"description = {_toml_value(self.description)}")
        for step in self.steps:
            lines.append("\n[[steps]]")
            for key, value in step.model_dump(mode="json", exclude_none=True).items():
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _explain(error: ValidationError, source: str, data: dict) -> str:
    """One line naming the file, the key and the fix for the first validation error."""
    errors = error.errors()
    # A misspelled key also shows up as the real key "missing": report the misspelling, it is the fix.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    location = [str(p) for p in first["loc"]]
    # Pydantic adds the discriminator tag to the path (steps.0.quantize.mode); drop it.
    location = [p for p in location if p not in STEP_TYPES]
    where = ".".join(location) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        key = location[-1]
        allowed = _allowed_keys(location, data)
        return f"{source}: unknown key {where!r}{did_you_mean(key, allowed)}; allowed: {', '.join(sorted(allowed))}"
    if kind == "union_tag_invalid":
        tag = first.get("input", {}).get("type") if isinstance(first.get("input"), dict) else None
        return f"{source}: {where}: unknown step type {tag!r}{did_you_mean(str(tag), STEP_TYPES)}; known: {', '.join(STEP_TYPES)}"
    if kind == "union_tag_not_found":
        return f"{source}: {where}: each step needs a 'type' ({', '.join(STEP_TYPES)})"
    received = first.get("input")
    shown = f" Received: {received!r}" if not isinstance(received, (dict, list)) else ""
    message = str(first.get("ctx", {}).get("error", first["msg"])) if kind == "value_error" else first["msg"]
    return f"{source}: {where}: {message}.{shown}"


def _allowed_keys(location: list[str], data: dict) -> set[str]:
    if len(location) >= 3 and location[0] == "steps":
        try:
            step_type = data["steps"][int(location[1])]["type"]
            return set(STEP_TYPES[step_type].model_fields)
        except (KeyError, IndexError, ValueError, TypeError):
            pass
    return {"schema", "name", "description", "steps"}


def recipe_from_dict(data: dict, source: str = "recipe") -> Recipe:
    """Validate a parsed recipe; raise :class:`UserError` with one line naming ``source`` and the key."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: a recipe must be a table of keys")
    schema = data.get("schema", RECIPE_SCHEMA)
    if schema != RECIPE_SCHEMA:
        raise UserError(f"{source}: unsupported recipe schema {schema!r}; this vggedge reads {RECIPE_SCHEMA!r}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as error:
        raise UserError(_explain(error, source, data)) from None


def shipped_recipes() -> dict[str, Path]:
    """Recipe name -> file, for the recipes shipped in ``recipes/``."""
    return {p.stem: p for p in sorted(RECIPES_DIR.glob("*.toml"))}


def load_recipe(name_or_path: str) -> Recipe:
    """A shipped recipe by name, or a user's recipe file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise UserError(f"recipe file {path} does not exist")
    else:
        shipped = shipped_recipes()
        if name_or_path not in shipped:
            hint = did_you_mean(name_or_path, shipped)
            raise UserError(
                f"unknown recipe {name_or_path!r}{hint}; available: {', '.join(shipped)} (or a path to a .toml file)"
            )
        path = shipped[name_or_path]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not a valid TOML recipe: {error}") from None
    return recipe_from_dict(data, source=str(path))


STEP_ADAPTER = TypeAdapter(AnyStep)
