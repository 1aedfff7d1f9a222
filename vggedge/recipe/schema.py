"""Recipes: a versioned file of ordered, typed steps, and the same thing built in Python.

A recipe file (TOML) is a serialization of :class:`Recipe`::

    schema = "vggedge.recipe/2"
    name = "gap-int8"
    description = "Swap the dense head for global average pooling, then full-integer quantization."
    max_drop = 1.0          # optional: this recipe's accuracy budget, in top-1 points

    [[steps]]
    type = "head"
    train = "distill"

    [[steps]]
    type = "quantize"
    mode = "int8"

Every step is validated when it is built (unknown keys rejected with a "did you mean", values
range-checked, layer selectors parsed), so a bad recipe fails before any model is loaded. What each
step *does* lives in the module its class names (``implementation``, under :mod:`vggedge.steps`);
this module only describes. A step type is one class here with ``@register_step`` above it.

Schema history: ``vggedge.recipe/1`` selected layers by Keras name (a regular expression); ``/2``
selects them by model anatomy (``conv``, ``block2-5``, ``dense``, ``head``, ``all``, ``name:REGEX``)
and adds ``max_drop``. Version-1 files are still read: their expressions become ``name:`` selectors.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vggedge.core.errors import RecipeError, did_you_mean
from vggedge.core.quantization import Quantization
from vggedge.core.selectors import migrate_v1_selector, parse_selector, split_selectors

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

RECIPE_SCHEMA = "vggedge.recipe/2"
READABLE_SCHEMAS = ("vggedge.recipe/1", RECIPE_SCHEMA)
# In a wheel the recipes are packaged inside vggedge/; in a source checkout they are at the top level.
_PACKAGED = Path(__file__).resolve().parents[1] / "recipes"  # a wheel: vggedge/recipes
RECIPES_DIR = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parents[2] / "recipes"

STEP_TYPES: dict[str, type[Step]] = {}


def register_step(cls: type[Step]) -> type[Step]:
    """The one registration point of a step type: the recipe format, `recipes show`, the dispatch in
    :func:`vggedge.steps.apply_step` and the step contract test all read :data:`STEP_TYPES`."""
    STEP_TYPES[cls.model_fields["type"].default] = cls
    return cls


class InvalidStep(RecipeError, ValueError):
    """A step built in code with a value it cannot take: a :class:`RecipeError` (one line, vggedge's words) that is
    also the ``ValueError`` Python code expects for a bad argument."""


def _wants_number(annotation: object) -> bool:
    """``int``, ``float`` or an optional or union of them, and not ``bool``."""
    import typing

    kinds = set(typing.get_args(annotation)) or {annotation}
    return bool(kinds & {int, float}) and bool not in kinds


class Step(BaseModel):
    """Base of every step: frozen, strict about unknown keys.

    ``implementation`` names the module under :mod:`vggedge.steps` that defines
    ``check(step, anatomy, data) -> anatomy`` (refuse before any work; the anatomy after the step) and
    ``apply(step, model, context) -> StepResult`` (the work, on a copy of the model).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    implementation: ClassVar[str]

    def __init__(self, **data: object) -> None:
        """A step built in code is checked as a recipe file's is: a mistake is a :class:`RecipeError` in one line
        (pydantic's ``ValidationError`` with its web link is for pydantic's users, not vggedge's)."""
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise InvalidStep(_explain_step(error, type(self), data)) from None

    # Marked as pydantic's own __init__ (as RootModel marks its own), so validating a recipe's nested steps keeps
    # pydantic's path and its error locations (steps.0.sparsity) instead of calling this one
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_numbers(cls, data: object) -> object:
        """A number written ``true`` is a mistake, not 1 (pydantic's lax mode takes a boolean for an integer)."""
        if isinstance(data, dict):
            for key, value in data.items():
                field = cls.model_fields.get(key)
                if isinstance(value, bool) and field is not None and _wants_number(field.annotation):
                    raise ValueError(f"{key} must be a number, not {str(value).lower()}")
        return data

    @classmethod
    def example(cls) -> Step:
        """The step in its docstring's TOML block: every step documents one, and the contract test runs it."""
        import textwrap

        block = (cls.__doc__ or "").split(".. code-block:: toml", 1)[1]
        return cls.model_validate(tomllib.loads(textwrap.dedent(block))["steps"][0])


def _selector(value: str) -> str:
    parse_selector(value)  # ValueError -> a recipe error naming the key
    return value


# Which optional quantize fields each mode uses, with their defaults. A field given to a mode that
# ignores it is an error (a silent no-op would mislead), and a resolved recipe shows only what its
# mode uses.
QUANTIZE_MODE_FIELDS: dict[Quantization, dict[str, object]] = {
    Quantization.DYNAMIC: {},
    Quantization.FLOAT16: {},
    Quantization.INT8: {"calibration_samples": 100, "equalize": True, "keep_float": None},
    Quantization.INT8_QAT: {"calibration_samples": 100, "epochs": 1, "learning_rate": 1e-5, "batch_size": 32},
}


@register_step
class QuantizeStep(Step):
    """Convert to TFLite with quantization; always the last step.

    ``mode``: ``dynamic`` (int8 weights, float activations), ``float16`` (fp16 weights),
    ``int8`` (full integer, per-channel weights, uint8 input, calibrated on ``calibration_samples``
    images of the calibration split), ``int8-qat`` (quantization-aware fine-tuning for
    ``epochs`` on the train split, then full-integer conversion). ``equalize`` (int8): cross-layer
    equalization before calibration, the same function with channel ranges int8 can hold
    (:mod:`vggedge.export.equalize`).

    .. code-block:: toml

        [[steps]]
        type = "quantize"
        mode = "int8"
        calibration_samples = 100
        equalize = true
        keep_float = "auto"   # or "block1,head"; default: none, every layer int8
    """

    implementation: ClassVar[str] = "quantize"
    type: Literal["quantize"] = "quantize"
    mode: Literal[Quantization.recipe_modes()]
    calibration_samples: Optional[int] = Field(None, ge=1, le=100_000, description="int8 and int8-qat only")
    epochs: Optional[int] = Field(None, ge=1, le=1000, description="fine-tuning epochs, int8-qat only")
    learning_rate: Optional[float] = Field(None, gt=0, lt=1, description="int8-qat only")
    batch_size: Optional[int] = Field(None, ge=1, le=4096, description="int8-qat only")
    equalize: Optional[bool] = Field(None, description="cross-layer equalization before calibration, int8 only")
    keep_float: Optional[str] = Field(
        None,
        description="int8 only: 'auto' (the fewest layers in float that pass the check) or selectors, comma-separated",
    )

    @model_validator(mode="before")
    @classmethod
    def _mode_defaults(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("mode") in Quantization.recipe_modes():
            fields = QUANTIZE_MODE_FIELDS[Quantization(data["mode"])]
            unused = [
                key
                for key in ("calibration_samples", "epochs", "learning_rate", "batch_size", "equalize", "keep_float")
                if data.get(key) is not None and key not in fields
            ]
            if unused:
                raise ValueError(f"{', '.join(unused)} does not apply to mode {data['mode']!r}")
            data = {**fields, **{k: v for k, v in data.items() if v is not None}}
        return data

    @field_validator("keep_float")
    @classmethod
    def _keep_float(cls, value: str | None) -> str | None:
        if value is not None and value != "auto":
            for part in split_selectors(value):
                parse_selector(part)
        return value

    @property
    def quantization(self) -> Quantization:
        return Quantization(self.mode)


@register_step
class PruneStep(Step):
    """Magnitude pruning (tensorflow-model-optimization) to ``sparsity`` on a polynomial schedule.

    ``layers``: a selector on the model's anatomy: ``dense`` (the hidden dense layers, fc1 and fc2 in
    VGG16; the output layer stays whole), ``conv`` (every convolution), ``block2-5`` (the convolutions
    of blocks 2 to 5), ``head``, ``all``, or ``name:REGEX`` (Keras layer names). The model is
    fine-tuned for ``epochs`` on the train split: the sparsity ramps up over the first half, the
    second half recovers, and the rate decays (cosine)
    from ``learning_rate`` to a tenth of it, or stays at it (``learning_rate_schedule = "constant"``:
    conv pruning recovered better so on the sample). Pruning wrappers are stripped before export.

    .. code-block:: toml

        [[steps]]
        type = "prune"
        sparsity = 0.9
        layers = "dense"
        epochs = 2
    """

    implementation: ClassVar[str] = "prune"
    type: Literal["prune"] = "prune"
    sparsity: float = Field(ge=0, lt=1)
    layers: str = "dense"
    epochs: int = Field(2, ge=1, le=1000)
    learning_rate: float = Field(1e-5, gt=0, lt=1, description="peak rate (cosine) or the rate (constant)")
    learning_rate_schedule: Literal["cosine", "constant"] = "cosine"
    batch_size: int = Field(32, ge=1, le=4096)

    _layers = field_validator("layers")(_selector)


@register_step
class HeadStep(Step):
    """Replace the dense head (Flatten or global pooling -> hidden Dense... -> output) by
    GlobalAveragePooling2D -> one Dense(classes) with the old output's activation.

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

    implementation: ClassVar[str] = "head"
    type: Literal["head"] = "head"
    train: Literal["labels", "distill"] = "distill"
    init: Literal["lstsq", "random"] = "lstsq"
    epochs: int = Field(5, ge=0, le=1000)
    learning_rate: float = Field(1e-3, gt=0, lt=1)
    batch_size: int = Field(32, ge=1, le=4096)


@register_step
class FilterPruneStep(Step):
    """Structured pruning: remove the ``ratio`` of filters with the smallest L1 norms from each conv
    layer ``layers`` selects (``conv``, ``block2-5``, ``name:REGEX``…), rebuild a thinner VGG16 with the surviving
    weights, and fine-tune it for ``epochs``. Fewer FLOPs, so real speed on any runtime. Instead of
    ``ratio``, ``flops_target`` (the fraction of the model's FLOPs to keep) picks the smallest
    uniform ratio that reaches it, and ``block_ratios`` gives each conv block its own ratio (block 1
    first; what ``--recipe auto`` finds). ``refit = true`` refits the layers after each cut by least squares
    before the fine-tune, so it starts close to the unpruned model.

    .. code-block:: toml

        [[steps]]
        type = "filter-prune"
        ratio = 0.5
        layers = "conv"
        epochs = 6
    """

    implementation: ClassVar[str] = "filters"
    type: Literal["filter-prune"] = "filter-prune"
    ratio: Optional[float] = Field(None, ge=0, lt=1)
    flops_target: Optional[float] = Field(None, gt=0, le=1)
    block_ratios: Optional[list[Annotated[float, Field(ge=0, lt=1)]]] = Field(
        None, min_length=1, description="fraction of filters removed per conv block, block 1 first"
    )
    layers: str = "conv"
    epochs: int = Field(6, ge=0, le=1000, description="the fine-tune's cap; it stops earlier on a plateau")
    learning_rate: float = Field(2e-4, gt=0, lt=1, description="peak rate, cosine-decayed to a tenth")
    train: Literal["labels", "distill"] = Field(
        "labels",
        description="fine-tune on the labels, or on the original model's outputs (distillation; also what a "
        "model whose classes are not the data's folders always uses)",
    )
    patience: int = Field(
        2,
        ge=0,
        le=1000,
        description="stop once the loss on held-apart images has not improved for this many epochs and keep the "
        "best epoch (0: every epoch, the last kept)",
    )
    batch_size: int = Field(32, ge=1, le=4096)
    refit: bool = Field(
        False,
        description="before the fine-tune, refit the layers after each cut by least squares to answer as before "
        "(channel reconstruction on 64 training images; what --recipe auto uses)",
    )

    _layers = field_validator("layers")(_selector)

    @model_validator(mode="after")
    def _one_target(self) -> FilterPruneStep:
        given = [self.ratio is not None, self.flops_target is not None, self.block_ratios is not None]
        if sum(given) != 1:
            raise ValueError("give one of ratio, flops_target or block_ratios")
        if self.block_ratios is not None and self.layers != "conv":
            raise ValueError("block_ratios covers every conv block: leave layers at 'conv'")
        if self.block_ratios is not None and not any(self.block_ratios):
            raise ValueError("block_ratios removes nothing: drop the step, or give a ratio above 0")
        return self


# Derived from the registry: a new step type needs no edit here.
AnyStep = Annotated[Union[tuple(STEP_TYPES.values())], Field(discriminator="type")]


class Recipe(BaseModel):
    """An ordered list of steps with a name; the unit that ``vggedge optimize --recipe`` runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: Literal["vggedge.recipe/2"] = Field(RECIPE_SCHEMA, alias="schema")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    max_drop: Optional[float] = Field(None, ge=0, le=100, description="accuracy budget in top-1 points")
    # How the run fitted images to the input (written by optimize into the run's recipe.toml; --resize sets it)
    resize: Optional[Literal["stretch", "center-crop", "letterbox"]] = None
    steps: list[AnyStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _quantize_last(self) -> Recipe:
        for i, step in enumerate(self.steps[:-1]):
            if isinstance(step, QuantizeStep):
                raise ValueError(f"steps[{i}]: a quantize step must be the last step")
        return self

    @property
    def quantization(self) -> Quantization:
        """The TFLite conversion mode: the final quantize step's mode, else float32."""
        last = self.steps[-1]
        return last.quantization if isinstance(last, QuantizeStep) else Quantization.FLOAT32

    @property
    def calibration_samples(self) -> int:
        """Calibration images the conversion needs (0 unless the mode is calibrated)."""
        last = self.steps[-1]
        return (
            int(last.calibration_samples or 0) if isinstance(last, QuantizeStep) and self.quantization.calibrated else 0
        )

    @property
    def keep_float(self) -> str | None:
        """The final int8 step's float fallback ('auto' or selectors), None when every layer is int8."""
        last = self.steps[-1]
        return last.keep_float if isinstance(last, QuantizeStep) else None

    def with_max_epochs(self, cap: int | None) -> Recipe:
        """The recipe with every fine-tune cut to at most ``cap`` epochs (``--max-epochs``): a quick trial
        of a recipe on a new model or data before the full run. Schedules (pruning ramps, rate decay) are
        sized from the capped count, and the saved ``recipe.toml`` shows it, so the run can be replayed."""
        if cap is None:
            return self
        steps = [
            step.model_copy(update={"epochs": cap})
            if isinstance(getattr(step, "epochs", None), int) and step.epochs > cap
            else step
            for step in self.steps
        ]
        return self.model_copy(update={"steps": steps})

    def with_keep_float(self, keep_float: str | None) -> Recipe:
        """The recipe with its final full-int8 step's float fallback set (``--keep-float``); a recipe that does not
        end in full int8 (float16, dynamic, int8-qat, float32) is returned as it is."""
        last = self.steps[-1] if self.steps else None
        if keep_float is None or not isinstance(last, QuantizeStep) or last.quantization != Quantization.INT8:
            return self
        updated = QuantizeStep.model_validate({**last.model_dump(exclude_none=True), "keep_float": keep_float})
        return self.model_copy(update={"steps": [*self.steps[:-1], updated]})

    def with_gentler_cut(self) -> Recipe | None:
        """The recipe with every cut halved (``ratio`` and ``block_ratios`` halved, ``flops_target`` moved halfway to
        keeping everything, a prune step's ``sparsity`` halved): the accuracy-aware end's last remedy. None when it
        cuts nothing."""
        steps, changed = [], False
        for step in self.steps:
            if isinstance(step, FilterPruneStep):
                halved = {
                    "ratio": None if step.ratio is None else round(step.ratio / 2, 4),
                    "block_ratios": None if step.block_ratios is None else [round(r / 2, 4) for r in step.block_ratios],
                    "flops_target": None if step.flops_target is None else round((1 + step.flops_target) / 2, 4),
                }
                step = FilterPruneStep.model_validate({**step.model_dump(exclude_none=True), **halved})
                changed = True
            elif isinstance(step, PruneStep) and step.sparsity:
                step = step.model_copy(update={"sparsity": round(step.sparsity / 2, 4)})
                changed = True
            steps.append(step)
        return self.model_copy(update={"steps": steps}) if changed else None

    @property
    def max_epochs(self) -> int:
        """The longest fine-tune of any step (0 for a recipe that trains nothing)."""
        return max((getattr(step, "epochs", None) or 0 for step in self.steps), default=0)

    def to_dict(self) -> dict:
        return self.model_dump(by_alias=True, mode="json")

    def to_toml(self) -> str:
        """Serialize back to the recipe file format (saved beside every model it produced)."""
        lines = [f'schema = "{RECIPE_SCHEMA}"', f"name = {_toml_value(self.name)}"]
        lines.append(f"description = {_toml_value(self.description)}")
        if self.max_drop is not None:
            lines.append(f"max_drop = {_toml_value(self.max_drop)}")
        if self.resize is not None:
            lines.append(f"resize = {_toml_value(self.resize)}")
        for step in self.steps:
            lines.append("\n[[steps]]")
            for key, value in step.model_dump(mode="json", exclude_none=True).items():
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, (list, tuple)):  # block_ratios: a TOML array, so the saved recipe reads back
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _explain_step(error: ValidationError, kind: type, data: dict) -> str:
    """One line for a step built in code: the class, the key, what is wrong, and "did you mean" for a typo."""
    first = next((e for e in error.errors() if e["type"] == "extra_forbidden"), error.errors()[0])
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        allowed = sorted(name for name in kind.model_fields if name != "type")
        return f"{kind.__name__}: unknown key {key!r}{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}"
    received = first.get("input")
    shown = f" Received: {received!r}" if not isinstance(received, (dict, list)) else ""
    message = str(first.get("ctx", {}).get("error", first["msg"])) if first["type"] == "value_error" else first["msg"]
    return f"{kind.__name__}: {key}: {message}.{shown}"


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
        hint = did_you_mean(str(tag), STEP_TYPES)
        return f"{source}: {where}: unknown step type {tag!r}{hint}; known: {', '.join(STEP_TYPES)}"
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
    return {Recipe.model_fields[name].alias or name for name in Recipe.model_fields}  # derived: never one short


def recipe_from_dict(data: dict, source: str = "recipe") -> Recipe:
    """Validate a parsed recipe; raise :class:`UserError` with one line naming ``source`` and the key."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a table of keys")
    schema = data.get("schema", RECIPE_SCHEMA)
    if schema not in READABLE_SCHEMAS:
        raise RecipeError(
            f"{source}: unsupported recipe schema {schema!r}; this vggedge reads {', '.join(READABLE_SCHEMAS)}"
        )
    if schema != RECIPE_SCHEMA:
        data = _migrate_v1(data)
    try:
        return Recipe.model_validate(data)
    except ValidationError as error:
        raise RecipeError(_explain(error, source, data)) from None


def _migrate_v1(data: dict) -> dict:
    """A ``vggedge.recipe/1`` document as ``/2``: layer-name expressions become ``name:`` selectors."""
    steps = []
    for step in data.get("steps", []):
        if isinstance(step, dict) and isinstance(step.get("layers"), str):
            step = {**step, "layers": migrate_v1_selector(step["layers"])}
        elif isinstance(step, dict) and step.get("type") == "filter-prune":
            step = {**step, "layers": "conv"}  # version 1's default matched every block{n}_conv{m}
        steps.append(step)
    return {**data, "schema": RECIPE_SCHEMA, "steps": steps}


def shipped_recipes() -> dict[str, Path]:
    """Recipe name -> file, for the recipes shipped in ``recipes/``."""
    return {p.stem: p for p in sorted(RECIPES_DIR.glob("*.toml"))}


def load_recipe(name_or_path: str) -> Recipe:
    """A shipped recipe by name, or a user's recipe file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise RecipeError(f"recipe file {path} does not exist")
    else:
        shipped = shipped_recipes()
        if name_or_path not in shipped:
            hint = did_you_mean(name_or_path, shipped)
            raise RecipeError(
                f"unknown recipe {name_or_path!r}{hint}; available: {', '.join(shipped)} (or a path to a .toml file)"
            )
        path = shipped[name_or_path]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise RecipeError(f"{path}: not a valid TOML recipe: {error}") from None
    except RecursionError:
        raise RecipeError(f"{path}: not a valid TOML recipe: nested too deeply") from None
    return recipe_from_dict(data, source=str(path))
