"""Recipe files: typed, validated steps; every error names the file and the key."""

from __future__ import annotations

import pytest

from vggedge.core.errors import UserError
from vggedge.recipe.schema import (
    HeadStep,
    PruneStep,
    QuantizeStep,
    Recipe,
    load_recipe,
    recipe_from_dict,
    shipped_recipes,
)

SHIPPED = {"fp16", "dynamic", "int8", "int8-qat", "prune", "gap", "gap-int8", "edge", "fast"}


def test_every_shipped_recipe_loads_and_roundtrips(tmp_path):
    assert set(shipped_recipes()) >= SHIPPED
    for name in shipped_recipes():
        recipe = load_recipe(name)
        copy = tmp_path / f"{name}.toml"
        copy.write_text(recipe.to_toml())
        assert load_recipe(str(copy)) == recipe


def test_the_python_api_builds_the_same_recipe():
    built = Recipe(
        name="int8",
        description=load_recipe("int8").description,
        steps=[QuantizeStep(mode="int8", calibration_samples=100)],
    )
    assert built == load_recipe("int8")
    assert built.quantization == "int8"
    assert Recipe(name="g", steps=[HeadStep()]).quantization == "float32"


def write(tmp_path, text: str):  # noqa: ANN001, ANN201
    path = tmp_path / "r.toml"
    path.write_text('schema = "vggedge.recipe/2"\nname = "r"\n' + text)
    return str(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[steps]]\ntype = "prune"\nsparsty = 0.5\n', "unknown key 'steps.0.sparsty' (did you mean 'sparsity'?)"),
        ('[[steps]]\ntype = "prune"\nsparsity = 1.0\n', "steps.0.sparsity: Input should be less than 1"),
        (
            '[[steps]]\ntype = "prune"\nsparsity = 0.5\nepochs = 0\n',
            "steps.0.epochs: Input should be greater than or equal to 1",
        ),
        (
            '[[steps]]\ntype = "quantize"\nmode = "int4"\n',
            "steps.0.mode: Input should be 'dynamic', 'float16', 'int8' or 'int8-qat'",
        ),
        ('[[steps]]\ntype = "quantise"\nmode = "int8"\n', "unknown step type 'quantise' (did you mean 'quantize'?)"),
        (
            '[[steps]]\ntype = "quantize"\nmode = "int8"\n[[steps]]\ntype = "head"\n',
            "a quantize step must be the last step",
        ),
        ('descripton = "x"\n[[steps]]\ntype = "head"\n', "unknown key 'descripton' (did you mean 'description'?)"),
        ("steps = []\n", "steps: List should have at least 1 item"),
        ("[[steps]\n", "not a valid TOML recipe"),
        (
            '[[steps]]\ntype = "quantize"\nmode = "float16"\nepochs = 3\n',
            "steps.0: epochs does not apply to mode 'float16'",
        ),
        (
            '[[steps]]\ntype = "quantize"\nmode = "dynamic"\ncalibration_samples = 9\n',
            "calibration_samples does not apply to mode 'dynamic'",
        ),
    ],
)
def test_bad_recipes_name_file_key_and_fix(tmp_path, body, message):
    path = write(tmp_path, body)
    with pytest.raises(UserError) as error:
        load_recipe(path)
    assert message in str(error.value)
    assert str(error.value).startswith(path)


def test_unknown_recipe_name_lists_the_available_ones():
    with pytest.raises(UserError) as error:
        load_recipe("int9")
    assert "did you mean 'int8'?" in str(error.value)
    assert "available: " in str(error.value) and "gap-int8" in str(error.value)


def test_unsupported_schema_version():
    with pytest.raises(UserError, match="unsupported recipe schema 'vggedge.recipe/9'"):
        recipe_from_dict({"schema": "vggedge.recipe/9", "name": "x", "steps": []}, "x.toml")


def test_step_values_are_range_checked_in_python_too():
    with pytest.raises(ValueError):
        PruneStep(sparsity=-0.1)
    with pytest.raises(ValueError):
        QuantizeStep(mode="int8", calibration_samples=0)


def test_quantize_steps_carry_only_what_their_mode_uses():
    assert QuantizeStep(mode="float16").model_dump(exclude_none=True) == {"type": "quantize", "mode": "float16"}
    assert QuantizeStep(mode="int8").calibration_samples == 100 and QuantizeStep(mode="int8").epochs is None
    qat = QuantizeStep(mode="int8-qat", epochs=2)
    assert (qat.epochs, qat.learning_rate, qat.batch_size, qat.calibration_samples) == (2, 1e-5, 32, 100)
    assert "epochs" not in load_recipe("int8").to_toml() and "epochs = 1" in load_recipe("int8-qat").to_toml()


def test_version_1_files_are_read_with_name_selectors():
    """A recipe written for vggedge 0.1 (layer names as regular expressions) still runs, meaning the same."""
    old = {
        "schema": "vggedge.recipe/1",
        "name": "old",
        "steps": [
            {"type": "prune", "sparsity": 0.7, "layers": "block[2-5]_conv[0-9]"},
            {"type": "prune", "sparsity": 0.5, "layers": "dense"},
            {"type": "filter-prune", "ratio": 0.5},
            {"type": "quantize", "mode": "int8"},
        ],
    }
    recipe = recipe_from_dict(old, "old.toml")
    assert [getattr(s, "layers", None) for s in recipe.steps] == ["name:block[2-5]_conv[0-9]", "dense", "conv", None]
    assert recipe.to_toml().startswith('schema = "vggedge.recipe/2"')


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ("blok2", "'blok2' is not a layer selector; use conv, block2-5"),
        ("block3-1", "blocks are numbered from 1 and the first comes first"),
        ("name:block[", "is not a regular expression"),
    ],
)
def test_bad_selectors_fail_when_the_recipe_is_read(tmp_path, layers, message):
    path = write(tmp_path, f'[[steps]]\ntype = "prune"\nsparsity = 0.5\nlayers = "{layers}"\n')
    with pytest.raises(UserError, match="steps.0.layers") as error:
        load_recipe(path)
    assert message in str(error.value)


def test_recipe_budget_round_trips():
    recipe = recipe_from_dict({"name": "b", "max_drop": 1.5, "steps": [{"type": "quantize", "mode": "int8"}]})
    assert recipe.max_drop == 1.5 and "max_drop = 1.5" in recipe.to_toml()
    assert load_recipe("fast").max_drop == 1.5 and load_recipe("int8").max_drop is None
    with pytest.raises(UserError, match="max_drop"):
        recipe_from_dict({"name": "b", "max_drop": -1, "steps": [{"type": "quantize", "mode": "int8"}]})


def test_every_step_type_is_registered_once_and_dispatches():
    """The registry is the only list of step types: the recipe format and the dispatch both read it."""
    from vggedge.recipe.schema import STEP_TYPES, AnyStep
    from vggedge.steps import implementation

    assert set(STEP_TYPES) == {"quantize", "prune", "head", "filter-prune"}
    assert set(AnyStep.__args__[0].__args__) == set(STEP_TYPES.values())
    for cls in STEP_TYPES.values():
        module = implementation(cls.model_construct())
        assert callable(module.check) and callable(module.apply), cls


def test_keep_float_from_the_command_line_sets_only_full_int8_steps():
    from vggedge.recipe.schema import load_recipe

    gap_int8 = load_recipe("gap-int8").with_keep_float("auto")
    assert gap_int8.keep_float == "auto" and 'keep_float = "auto"' in gap_int8.to_toml()
    assert gap_int8.steps[-1].calibration_samples == 100 and gap_int8.steps[-1].equalize is True
    assert load_recipe("int8").with_keep_float("block1,head").keep_float == "block1,head"
    for name in ("fp16", "dynamic", "int8-qat", "gap"):
        recipe = load_recipe(name)
        assert recipe.with_keep_float("auto") is recipe
