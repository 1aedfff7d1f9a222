"""Load the float32 baseline: the offline sample, Keras' ImageNet VGG16, or a user's model file.

Whatever the source, the result is a flat (no nested sub-models) Keras 2 model that takes raw RGB
pixels in [0, 255] (its preprocessing is one of its layers) and outputs class scores, its
:class:`~vggedge.models.anatomy.Anatomy`, and what the report needs to know about it. Keras 3 files
(``.keras``, and ``.h5`` written by Keras 3) are translated to Keras 2; Keras 2 ``.h5`` files load as
they are.

Preprocessing: a model that starts with its own Rescaling/Normalization needs none added (``none``
is its default, and asking for more would scale twice: refused). A model without it gets
``--preprocess`` as given, else ``none`` (raw 0-255 pixels), which the report states.

BatchNormalization layers are kept (:mod:`vggedge.models.normalization` says why and how); the report
lists each.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path

from vggedge.backend.keras_env import keras
from vggedge.core.errors import ModelError
from vggedge.core.memory import release_memory
from vggedge.core.model_path import not_a_model_file
from vggedge.core.report import ModelSection
from vggedge.models.anatomy import Anatomy, find_anatomy, flatten_chain
from vggedge.models.foreign import FOREIGN_SUFFIXES
from vggedge.models.normalization import describe_normalization
from vggedge.models.translate import TRANSLATORS, keras3_to_keras2
from vggedge.models.vgg import Preprocess, preprocessing_layer, with_preprocessing

VGG16_WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
# Layer classes a model file may contain: anything else (Lambda, custom classes) could run code.
SAFE_CLASSES = set(TRANSLATORS) | {"InputLayer", "Sequential", "Functional", "Model", "Dropout"}


@dataclasses.dataclass
class Baseline:
    model: keras.Model
    source: str
    weights: str
    class_names: list[str] | None = None
    preprocess: str = "none"  # what vggedge prepended ("none": the model's own layers, or raw pixels)
    preprocess_note: str | None = None  # how that was decided, for the report
    translation: dict | None = None  # a PyTorch or ONNX source: how it was read and verified (models.foreign)

    @functools.cached_property
    def anatomy(self) -> Anatomy:
        return find_anatomy(self.model)

    @functools.cached_property
    def normalization(self) -> list[dict]:
        """Each BatchNormalization and what vggedge does with it (:mod:`vggedge.models.normalization`)."""
        return describe_normalization(self.model)

    @property
    def accuracy_measurable(self) -> bool:
        return self.weights != "random"

    @property
    def classes(self) -> int:
        units = int(self.model.output_shape[-1])
        return 2 if units == 1 else units

    def describe(self) -> ModelSection:
        """The report's ``model`` section."""
        return ModelSection(
            source=self.source,
            weights=self.weights,
            input_shape=[int(d) for d in self.model.input_shape[1:]],
            classes=self.classes,
            params=int(self.model.count_params()),
            preprocess=self.preprocess,
            anatomy={**self.anatomy.describe(), "normalization": self.normalization},
            translation=self.translation,
        )


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def load_imagenet_vgg16(weights: str | None, offline: bool = False) -> Baseline:
    """Keras' VGG16 with ImageNet weights (cache or download), a weights file, or random weights.

    ``offline``: fail at once with the way out when the weights are not in Keras' cache, instead of
    waiting for a download that cannot succeed."""
    # Built on top of the preprocessing layer in one go (input_tensor): no second copy of the 138M
    # weights, as copying the layers behind a new input would make.
    pixels = keras.Input((224, 224, 3), name="pixels")
    on_pixels = {"input_tensor": preprocessing_layer("caffe")(pixels)}
    if weights == "random":
        model = keras.applications.VGG16(weights=None, **on_pixels)
        label = "random"
    elif weights:
        path = Path(weights)
        if not path.is_file():
            raise ModelError(
                f"weights file {path} does not exist: "
                "pass --weights PATH to a VGG16 .h5 weights file, or --weights random"
            )
        model = keras.applications.VGG16(weights=None, **on_pixels)
        try:
            model.load_weights(path)
        except (OSError, ValueError) as error:
            raise ModelError(f"{path} is not a VGG16 weights file ({str(error).splitlines()[0][:120]})") from None
        label = str(path)
    else:
        cached = keras_cache_dir() / VGG16_WEIGHTS_FILE
        if not cached.exists() and offline:
            raise ModelError(_offline_message(cached))
        try:
            model = keras.applications.VGG16(weights="imagenet", **on_pixels)
        except Exception as error:  # Keras raises a bare Exception for a failed download
            if "URL fetch failure" in str(error) or isinstance(error, OSError):
                raise ModelError(_offline_message(cached)) from None
            raise
        label = "imagenet"
    return Baseline(
        model,
        source="vgg16",
        weights=label,
        preprocess="caffe",
        preprocess_note="caffe: Keras' VGG16 preprocess_input, baked in",
    )


def _offline_message(cached: Path) -> str:
    return (
        f"Keras' ImageNet VGG16 weights are not cached ({cached}) and cannot be downloaded here: "
        "pass --weights PATH to a weights file, or --weights random for a size-and-latency-only run"
    )


# A saved VGG's architecture is tens of KB of JSON: past this it is refused unread (a 1 MB .keras whose config.json
# inflated to 1 GB took 5.7 GB and 26 s before).
MAX_CONFIG_BYTES = 16 * 2**20
# A .keras member this many times larger than it is compressed, past MAX_CONFIG_BYTES, is a zip bomb: weights
# compress a few percent at most.
MAX_INFLATION = 100


def check_config_size(size: int, path: Path, what: str) -> None:
    if size > MAX_CONFIG_BYTES:
        raise ModelError(
            f"{path}: {what} is {size / 2**20:.0f} MiB, more than the {MAX_CONFIG_BYTES // 2**20} MiB a model's "
            "architecture takes: not a model file vggedge will read"
        )


def check_members(archive: object, path: Path) -> None:
    """Every member's uncompressed size, from the zip's directory, before any is read."""
    for info in archive.infolist():  # type: ignore[attr-defined]
        if info.filename.endswith(".json"):
            check_config_size(info.file_size, path, info.filename)
        elif info.file_size > MAX_CONFIG_BYTES and info.file_size > MAX_INFLATION * max(info.compress_size, 1):
            raise ModelError(
                f"{path}: {info.filename} inflates from {info.compress_size:,} to {info.file_size:,} bytes: "
                "not a model file vggedge will read"
            )


def parsed_config(raw: bytes | str, path: Path, what: str) -> set[str]:
    """The ``class_name`` of every part of a saved architecture, or one line saying why it cannot be read."""
    check_config_size(len(raw), path, what)
    try:
        return _classes_in_config(json.loads(raw))
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise ModelError(f"{path}: {what} is not valid JSON (corrupt, or not saved by Keras)") from None
    except RecursionError:
        raise ModelError(f"{path}: {what} is nested too deeply to be a model's architecture") from None


def _classes_in_config(config: object) -> set[str]:
    """Every ``class_name`` in a saved model's architecture (the optimizer and loss are not loaded)."""
    found: set[str] = set()
    if isinstance(config, dict):
        if "class_name" in config and isinstance(config["class_name"], str):
            found.add(config["class_name"])
        for key, value in config.items():
            if key not in ("compile_config", "training_config"):
                found |= _classes_in_config(value)
    elif isinstance(config, list):
        for value in config:
            found |= _classes_in_config(value)
    return found


def _refuse_unsafe(classes: set[str], path: Path) -> None:
    layer_like = {c for c in classes if c[:1].isupper()}
    unsafe = sorted(
        c
        for c in layer_like - SAFE_CLASSES
        if not c.endswith(("Initializer", "Regularizer", "Constraint")) and c not in _CONFIG_HELPERS
    )
    if unsafe:
        raise ModelError(
            f"{path} contains layers vggedge will not load ({', '.join(unsafe)}): they can run arbitrary code or are "
            "not supported; export a model built from standard Conv2D/Pooling/Flatten/Dense layers"
        )


_CONFIG_HELPERS = {
    "GlorotUniform",
    "GlorotNormal",
    "HeNormal",
    "HeUniform",
    "Zeros",
    "Ones",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "Constant",
    "VarianceScaling",
    "Orthogonal",
    "L1",
    "L2",
    "L1L2",
    "DTypePolicy",
    "Policy",
    "FloatDTypePolicy",
    "__tensor__",
    "__numpy__",
    # shapes and specs a SavedModel's Keras metadata records beside the layers (data, not code)
    "InputSpec",
    "TensorShape",
    "TypeSpec",
    "TensorSpec",
}


def _load_h5(path: Path) -> keras.Model:
    """A Keras 2 .h5 file as it is; one written by Keras 3 (TensorFlow >= 2.16's ``model.save("m.h5")``)
    through Keras 3 and the translation, like a .keras file."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "model_config" in handle.attrs:
                check_config_size(handle.attrs.get_id("model_config").get_storage_size(), path, "its model_config")
            raw = handle.attrs.get("model_config")
            version = handle.attrs.get("keras_version")
    except OSError:
        raise ModelError(f"{path} is not a readable HDF5 model file (corrupt or truncated?)") from None
    if raw is None:
        raise ModelError(f"{path} holds no model architecture (a weights-only file?): save the whole model")
    _refuse_unsafe(parsed_config(raw, path, "its model_config"), path)
    version = version.decode() if isinstance(version, bytes) else str(version or "")
    if version.startswith("3"):
        return _keras3_to_keras2(path, f"a Keras {version} .h5 file")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError) as error:
        raise ModelError(
            f"cannot load {path} (Keras {version or 'version unknown'}) as a Keras 2 model ({type(error).__name__}); "
            "re-save it with model.save('model.keras') and pass that file"
        ) from None


def _load_keras3(path: Path) -> keras.Model:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            check_members(archive, path)
            raw = archive.read("config.json")
    except (zipfile.BadZipFile, KeyError, OSError):
        raise ModelError(f"{path} is not a readable .keras model file (corrupt or truncated?)") from None
    _refuse_unsafe(parsed_config(raw, path, "its config.json"), path)
    return _keras3_to_keras2(path, "a .keras file")


def _keras3_to_keras2(path: Path, what: str) -> keras.Model:
    import keras as keras3

    try:
        model3 = keras3.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras 3 raises many types for a bad file; its messages dump configs
        raise ModelError(
            f"cannot load {path} ({what}) with Keras 3 ({type(error).__name__}): "
            "check that the file is complete and was saved by Keras 3"
        ) from None
    model = keras3_to_keras2(model3)
    del model3
    release_memory()  # the Keras 3 copy (and, for a file saved with its optimizer, what reading it left) goes now
    return model


def check_classifier(model: keras.Model, path: Path | str) -> None:
    """Refuse models that do not map one RGB image to one vector of class scores."""
    in_shape, out_shape = model.input_shape, model.output_shape
    if isinstance(in_shape, list) or isinstance(out_shape, list):
        raise ModelError(f"{path} has several inputs or outputs; vggedge needs one image in, one class vector out")
    if len(in_shape) != 4 or in_shape[-1] != 3 or in_shape[1] is None or in_shape[1] != in_shape[2]:
        raise ModelError(f"{path} is not an image classifier: its input is {in_shape}, expected (None, S, S, 3)")
    if len(out_shape) != 2:
        raise ModelError(f"{path} is not an image classifier: its output is {out_shape}, expected (None, classes)")


def resolve_preprocess(anatomy: Anatomy, requested: Preprocess | None, path: Path | str) -> tuple[Preprocess, str]:
    """(what to prepend, why) for a user model; refuses a --preprocess that would scale pixels twice."""
    if anatomy.preprocessing:
        own = ", ".join(anatomy.preprocessing)
        if requested not in (None, "none"):
            raise ModelError(
                f"{path} already preprocesses its input ({own}); --preprocess {requested} would scale the pixels "
                "twice: leave --preprocess out (or pass none)"
            )
        return "none", f"none: the model's own {own}"
    if requested is None:
        return "none", (
            "none (default): the model has no Rescaling/Normalization layer, so it gets raw 0-255 "
            "pixels; pass --preprocess caffe|unit|tf|torch if it expects preprocessed input"
        )
    return requested, f"{requested}: --preprocess, baked in"


def load_model_file(path: Path, preprocess: Preprocess | None) -> Baseline:
    path = Path(path)
    if not (path.is_dir() and (path / "saved_model.pb").is_file()):
        problem = not_a_model_file(path, "a .keras, .h5, .safetensors, .pth or .onnx file, 'sample' or 'vgg16'")
        if problem:
            raise ModelError(problem)
    if path.suffix in FOREIGN_SUFFIXES:
        return load_foreign(path, preprocess)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return _from_keras_model(_load_saved_model(path), path, preprocess)
    if path.suffix == ".h5":
        model = _load_h5(path)
    elif path.suffix == ".keras":
        model = _load_keras3(path)
    else:
        raise ModelError(
            f"{path}: unsupported model file type {path.suffix!r}; use .keras (Keras 3), .h5 (Keras 2), a PyTorch "
            "state dict (.safetensors, .pth, .pt) or .onnx"
        )
    return _from_keras_model(model, path, preprocess)


def _from_keras_model(model: keras.Model, path: Path, preprocess: Preprocess | None) -> Baseline:
    """A loaded Keras 2 model as a baseline: one image in, one class vector out, flat, its preprocessing decided."""
    check_classifier(model, path)
    model = flatten_chain(model)
    chosen, note = resolve_preprocess(find_anatomy(model), preprocess, path)
    return Baseline(
        with_preprocessing(model, chosen), source=str(path), weights="file", preprocess=chosen, preprocess_note=note
    )


def _load_saved_model(path: Path) -> keras.Model:
    """A Keras 2 SavedModel folder (what ``model.save("dir")`` wrote before Keras 3): every layer class in its Keras
    metadata checked as a file's architecture is (no Lambda, no custom class), then loaded by Keras 2."""
    from tf_keras.protobuf import saved_metadata_pb2

    metadata = path / "keras_metadata.pb"
    if not metadata.is_file():
        raise ModelError(
            f"{path} is a SavedModel without Keras' metadata (tf.saved_model.save, not model.save): vggedge reads "
            "Keras models; save it from Keras as model.keras, .h5 or a SavedModel folder"
        )
    check_config_size(metadata.stat().st_size, path, "keras_metadata.pb")
    saved = saved_metadata_pb2.SavedMetadata()
    try:
        saved.ParseFromString(metadata.read_bytes())
    except Exception:  # noqa: BLE001 - protobuf's DecodeError
        raise ModelError(f"{path}: keras_metadata.pb is not readable (corrupt, or not saved by Keras)") from None
    classes: set[str] = set()
    for node in saved.nodes:
        classes |= parsed_config(node.metadata, path, f"keras_metadata.pb node {node.node_path}")
    _refuse_unsafe(classes, path)
    try:
        return keras.models.load_model(str(path), compile=False)
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds for a broken folder
        said = str(error).splitlines()[0][:200]
        raise ModelError(f"{path}: Keras 2 could not load this SavedModel: {said}") from None


def load_foreign(path: Path, preprocess: Preprocess | None) -> Baseline:
    """A PyTorch checkpoint or an ONNX VGG, translated exactly and verified (:mod:`vggedge.models.foreign`);
    preprocessing ``torch`` unless asked otherwise: torchvision's checkpoints expect ImageNet's mean and std."""
    from vggedge.models.foreign import read_foreign, source_answers, verify_translation
    from vggedge.models.vgg_weights import keras_vgg

    weights = read_foreign(path)
    chosen: Preprocess = preprocess or "torch"
    note = (
        f"{chosen}: --preprocess, baked in" if preprocess else
        "torch (default for a PyTorch or ONNX file): x/255, then torchvision's ImageNet mean and std, baked in; pass "
        "--preprocess unit|tf|caffe|none if the checkpoint was trained otherwise"
    )  # fmt: skip
    answers = source_answers(weights, path, chosen)
    weights.runner = None  # a TorchScript module: its runtime is done once its answers are in
    model = keras_vgg(weights, chosen, name=path.stem)
    translation = verify_translation(model, weights, path, chosen, answers)
    return Baseline(model, str(path), "file", weights.class_names, chosen, note, translation)


def load_baseline(
    model: str,
    weights: str | None,
    preprocess: Preprocess | None,
    dataset=None,  # noqa: ANN001 - the sample's Dataset, for --model sample
    progress: bool = True,
    cache: Path | None = None,
    offline: bool = False,
) -> Baseline:
    """Resolve ``--model``: ``sample`` (trained once, kept in ``cache``), ``vgg16`` or a path."""
    if weights and model != "vgg16":
        raise ModelError("--weights only applies to --model vgg16")
    if model == "sample":
        from vggedge.models.sample import load_or_train_sample

        if cache is None:
            raise ValueError("--model sample needs a cache folder")
        keras_model = load_or_train_sample(dataset, cache, progress=progress)
        return Baseline(
            keras_model,
            source="sample",
            weights="trained",
            class_names=[str(i) for i in range(10)],
            preprocess_note="unit: the sample model's own x/255 layer",
        )
    if model == "vgg16":
        return load_imagenet_vgg16(weights, offline)
    return load_model_file(Path(model), preprocess)
