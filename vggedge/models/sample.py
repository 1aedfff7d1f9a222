"""The offline sample: scikit-learn's handwritten digits as an image folder, and a VGG16 trained on it.

Keras' ImageNet weights cannot be downloaded everywhere, so the default baseline is a real VGG16
topology (13 conv layers, Flatten, Dense 4096, Dense 4096, softmax) trained on a real labelled
dataset that ships inside scikit-learn: 1,797 8x8 digits, scaled to 0-255, resized to 32x32 and
made RGB. The images are written once as PNG files in the class-per-folder layout, so the sample
goes through exactly the same loading, splitting and evaluation code as a user's data (and can be
copied to a device for ``vggedge bench``).

Fixed split (see :func:`vggedge.core.data.load_folder`): 360 evaluation images, 100 calibration
images, 1,337 training images, chosen by a checksum of each file's path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vggedge.core.data import Dataset, load_folder

SAMPLE_SIZE = 32
SAMPLE_EVAL = 360
SAMPLE_CALIBRATION = 100


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
    """How the sample is trained. Part of the cache key: changing it retrains.

    VGG16 has no batch normalization, so it only learns from scratch with a careful start:
    He-normal initialization and Adam at 1e-4 (3e-4 did not start learning at all), decayed so the
    last epoch settles instead of oscillating (5 epochs at a constant 1e-4 ended at 94.7% once).
    Four epochs reach what six did (97.78% held-out on seeds 0-2 on a 2-core Xeon, as six did on seed 0;
    reports/benchmarks/sample-schedule-*.md) in two thirds of the time the README's first command waits.
    """

    epochs: int = 4
    learning_rate: float = 1e-4  # cosine-decayed to a tenth of it by the last step
    batch_size: int = 32
    initializer: str = "he_normal"
    seed: int = 0


def sample_images_dir(cache: Path) -> Path:
    """Write the digits as PNG files (once, under ``cache``) and return the folder."""
    root = cache / "data" / f"digits-{SAMPLE_SIZE}"
    marker = root / ".complete"
    if marker.exists():
        return root
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.clip(digits.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    for index, (image, label) in enumerate(zip(pixels, digits.target, strict=True)):
        target = root / str(label) / f"{index:04d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        rgb = Image.fromarray(image).resize((SAMPLE_SIZE, SAMPLE_SIZE), Image.Resampling.BILINEAR).convert("RGB")
        rgb.save(target)
    marker.touch()
    return root


def load_sample_dataset(cache: Path, progress: bool = True) -> Dataset:
    return load_folder(
        sample_images_dir(cache),
        SAMPLE_SIZE,
        SAMPLE_EVAL,
        SAMPLE_CALIBRATION,
        name="sklearn-digits-32",
        progress=progress,
    )


def sample_spec():  # noqa: ANN201 - VGGSpec
    from vggedge.models.vgg import VGGSpec

    return VGGSpec(input_size=SAMPLE_SIZE, classes=10, width=1.0, dense_units=4096, preprocess="unit")


def cache_key(spec, plan: TrainingPlan) -> str:  # noqa: ANN001
    """The cached model's name: its definition and training plan (v2: trained through the streamed input)."""
    text = json.dumps({"spec": dataclasses.asdict(spec), "plan": dataclasses.asdict(plan), "v": 2}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def train_classifier(model, dataset: Dataset, plan: TrainingPlan, progress: bool = True):  # noqa: ANN001, ANN201
    """Train ``model`` on the train split with a progress bar; returns held-out accuracy."""
    from vggedge.backend.keras_env import keras
    from vggedge.backend.training import cosine_to_a_tenth, fit, total_steps

    keras.utils.set_random_seed(plan.seed)
    schedule = cosine_to_a_tenth(plan.learning_rate, total_steps(len(dataset.train), plan.batch_size, plan.epochs))
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"])
    fit(
        model,
        dataset.train,
        dataset.train.labels,
        plan.epochs,
        plan.batch_size,
        "Training sample VGG16",
        progress,
    )
    return float(model.evaluate(dataset.eval.images, dataset.eval.labels, verbose=0)[1])


def load_or_train_sample(  # noqa: ANN201
    dataset: Dataset,
    cache: Path,
    spec=None,  # noqa: ANN001
    plan: TrainingPlan | None = None,
    progress: bool = True,
):
    """The trained sample model from ``cache``, training it first when the definition changed."""
    from vggedge.backend.keras_env import keras
    from vggedge.models.vgg import build_vgg16

    spec = spec or sample_spec()
    plan = plan or TrainingPlan()
    path = cache / "models" / f"sample-vgg16-{cache_key(spec, plan)}.h5"
    if path.exists():
        return keras.models.load_model(path, compile=False)
    keras.utils.set_random_seed(plan.seed)
    model = build_vgg16(spec, initializer=plan.initializer, name="sample_vgg16")
    if progress:
        from vggedge.core.progress import log_line

        log_line(f"Training the sample VGG16 ({plan.epochs} epochs), once: it is cached for every later run")
    started = time.perf_counter()
    accuracy = train_classifier(model, dataset, plan, progress)
    if progress:
        from rich.console import Console

        Console(stderr=True).print(
            f"Trained the sample VGG16 in {time.perf_counter() - started:.0f} s: "
            f"held-out top-1 {accuracy:.3f}; cached at {path}"
        )
    from vggedge.core.atomic import atomic_path

    with atomic_path(path) as tmp:
        model.save(tmp.with_suffix(".h5"))
        tmp.with_suffix(".h5").replace(tmp)
    return model
