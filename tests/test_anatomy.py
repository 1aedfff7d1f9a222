"""Model anatomy by structure on every model form users bring, `vggedge inspect`, and the refusals."""

from __future__ import annotations

import json

import pytest

from forms import FORMS, nested_frozen, sequential_autonamed
from vggedge.backend.keras_env import keras
from vggedge.core.errors import UserError
from vggedge.models.anatomy import NotVGGLike, find_anatomy
from vggedge.models.loading import load_model_file
from vggedge.models.vgg import VGGSpec, build_vgg16


@pytest.fixture(scope="module")
def form_files(tmp_path_factory):  # noqa: ANN001, ANN201
    """Each form saved untrained as .keras; the Sequential one also as a Keras 3 .h5 (what TF >= 2.16 writes)."""
    folder = tmp_path_factory.mktemp("forms")
    files = {}
    for name, (builder, _, _) in FORMS.items():
        model = builder()
        model.save(folder / f"{name}.keras")
        files[name] = folder / f"{name}.keras"
    sequential_autonamed().save(folder / "keras3.h5")
    files["keras3_h5"] = folder / "keras3.h5"
    build_vgg16(VGGSpec(input_size=32, classes=10, width=1 / 16, dense_units=16, preprocess="unit")).save(
        folder / "keras2.h5"
    )
    files["keras2_h5"] = folder / "keras2.h5"
    return files


@pytest.mark.parametrize(
    ("form", "preprocess", "head", "hidden", "activation", "classes", "own_preprocessing"),
    [
        ("sequential_autonamed", None, "flatten", 1, "sigmoid", 2, "rescaling"),
        ("keras3_h5", None, "flatten", 1, "sigmoid", 2, "rescaling"),
        ("gap_dense_functional", "unit", "gap", 2, "softmax", 10, "preprocess"),
        ("nested_frozen", "unit", "flatten", 1, "sigmoid", 2, "preprocess"),
        ("keras2_h5", None, "flatten", 2, "softmax", 10, "preprocess"),
        ("batch_norm", None, "flatten", 1, "softmax", 10, "rescaling"),
    ],
)
def test_every_form_has_vgg16_anatomy(
    form_files, form, preprocess, head, hidden, activation, classes, own_preprocessing
):
    anatomy = load_model_file(form_files[form], preprocess).anatomy
    assert anatomy.is_vgg16 and [len(b) for b in anatomy.blocks] == [2, 2, 3, 3, 3]
    assert (anatomy.head_kind, len(anatomy.hidden), anatomy.activation, anatomy.classes) == (
        head,
        hidden,
        activation,
        classes,
    )
    assert len(anatomy.preprocessing) == 1 and anatomy.preprocessing[0].startswith(
        own_preprocessing
    )  # Keras 3 numbers auto names
    assert len(anatomy.select("block2-5")) == 11 and anatomy.select("dense") == list(anatomy.hidden)


def test_nested_base_is_flattened_and_stays_frozen(form_files, tmp_path):
    import keras as keras3

    model = nested_frozen()
    model.layers[0].trainable = False
    model.save(tmp_path / "frozen.keras")
    baseline = load_model_file(tmp_path / "frozen.keras", "unit")
    assert not any(isinstance(layer, keras.Model) for layer in baseline.model.layers)
    assert baseline.anatomy.convs[0] == "block1_conv1"
    frozen = {layer.name: layer.trainable for layer in baseline.model.layers}
    assert not frozen["block1_conv1"] and not frozen["block5_conv3"] and frozen["fc"]
    assert isinstance(keras3.saving.load_model(tmp_path / "frozen.keras").layers[0], keras3.Model)  # it was nested


def test_preprocessing_twice_is_refused_and_the_default_stated(form_files):
    with pytest.raises(UserError, match="already preprocesses its input .rescaling.*; --preprocess unit would scale"):
        load_model_file(form_files["sequential_autonamed"], "unit")
    own = load_model_file(form_files["sequential_autonamed"], None)
    assert own.preprocess == "none" and "the model's own rescaling" in own.preprocess_note
    bare = load_model_file(form_files["gap_dense_functional"], None)
    assert bare.preprocess == "none" and "raw 0-255 pixels" in bare.preprocess_note


@pytest.mark.parametrize(
    ("build", "message"),
    [
        ("resnet", "joins or reuses branches"),
        ("no_conv", "no convolution blocks"),
        ("no_head", "no Flatten or global pooling"),
    ],
)
def test_models_that_are_not_vgg_like_are_told_so_in_one_line(build, message):
    inputs = keras.Input((32, 32, 3))
    if build == "resnet":
        x = keras.layers.Conv2D(3, 3, padding="same")(inputs)
        x = keras.layers.Add()([x, inputs])
        outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    elif build == "no_conv":
        outputs = keras.layers.Dense(2)(keras.layers.Flatten()(inputs))
    else:
        outputs = keras.layers.MaxPooling2D(2)(keras.layers.Conv2D(3, 3)(inputs))
    with pytest.raises(NotVGGLike, match=message) as error:
        find_anatomy(keras.Model(inputs, outputs))
    assert "\n" not in str(error.value)


def test_inspect_shows_parts_and_which_recipes_apply(cli, form_files):
    result = cli("inspect", form_files["gap_dense_functional"], "--preprocess", "unit", "--json")
    assert result.code == 0, result.err
    facts = json.loads(result.out)
    assert facts["anatomy"]["head"]["kind"] == "gap" and len(facts["anatomy"]["head"]["hidden"]) == 2
    assert all(entry["applies"] for entry in facts["recipes"].values()), facts["recipes"]
    assert facts["params"] > 0 and facts["flops"] > 0
    text = cli("inspect", form_files["sequential_autonamed"])
    assert text.code == 0 and "block 5: 3 conv" in text.out and "sigmoid" in text.out
    assert "normalization:" not in text.out and "frozen:" not in text.out


@pytest.mark.slow  # builds and saves a nested VGG16-BN, then runs inspect on it
def test_inspect_shows_normalization_and_a_frozen_base(cli, form_files, tmp_path):
    bn = json.loads(cli("inspect", form_files["batch_norm"], "--json").out)
    assert len(bn["normalization"]) == 14 and all("re-estimated" in n["handling"] for n in bn["normalization"])
    assert all(entry["applies"] for entry in bn["recipes"].values()), bn["recipes"]
    assert "normalization: 14 BatchNormalization" in cli("inspect", form_files["batch_norm"]).out
    model = nested_frozen()
    model.layers[0].trainable = False
    model.save(tmp_path / "frozen.keras")
    text = cli("inspect", tmp_path / "frozen.keras", "--preprocess", "unit").out
    assert "frozen: 13 of 13 conv layers" in " ".join(text.split())


def test_inspect_says_why_a_recipe_does_not_apply(cli, tmp_path):
    """A model whose head is already GAP -> one Dense has nothing for the head swap to remove."""
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for _ in range(5):
        x = keras.layers.MaxPooling2D(2)(keras.layers.Conv2D(4, 3, padding="same")(x))
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))).save(
        tmp_path / "gap.h5"
    )
    facts = json.loads(cli("inspect", tmp_path / "gap.h5", "--json").out)
    assert not facts["recipes"]["gap"]["applies"] and "already global pooling" in facts["recipes"]["gap"]["why_not"]
    assert facts["recipes"]["int8"]["applies"] and not facts["anatomy"]["vgg16"]
