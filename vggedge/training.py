"""Training loops shared by the sample model and the fine-tuning steps, with a progress bar, and the
``tf.data`` input pipeline that streams images from disk into them.

Images come from a :class:`~vggedge.data.Split` (decoded arrays: the sample, synthetic images) or a
:class:`~vggedge.data.FileSplit` (files on disk: a user's training folder of any size). Both go
through the same pipeline: an index dataset, shuffled per epoch, mapped to pixels by the data module's
own decoder (Pillow, the same RGB conversion and resize as evaluation, so figures do not depend on the
path taken) on parallel threads, batched and prefetched. Memory holds a few batches, not the data set.
"""

from __future__ import annotations

import numpy as np

from vggedge.data import FileSplit, Split
from vggedge.keras_env import keras, tf
from vggedge.progress import make_progress

Images = Split | FileSplit


def image_size(images: Images) -> int:
    return images.size if isinstance(images, FileSplit) else int(images.images.shape[1])


def image_dataset(images: Images, targets: np.ndarray | None, batch_size: int, shuffle: bool) -> tf.data.Dataset:
    """Batches of uint8 pixels (and targets), decoded on parallel threads; shuffled per epoch when asked
    (seeded by the caller's global seed). With targets, images that fail to decode are left out; without
    (prediction), they are a black image so outputs stay aligned with the file list.

    Decoding is done a whole batch per call: one Python call per image costs more than Pillow's JPEG
    decoding itself, and Pillow releases the GIL while it decodes and resizes, so batches decode in
    parallel on every core."""
    size = image_size(images)

    def load_batch(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pixels = np.zeros((len(indices), size, size, 3), np.uint8)
        ok = np.ones(len(indices), np.bool_)
        for row, image in enumerate(images.load_many([int(index) for index in indices])):
            if image is None:
                ok[row] = False
            else:
                pixels[row] = image
        return pixels, ok

    def fetch(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        pixels, ok = tf.numpy_function(load_batch, [indices], (tf.uint8, tf.bool), stateful=False)
        pixels.set_shape((None, size, size, 3))
        ok.set_shape((None,))
        return pixels, ok, indices

    indices = tf.data.Dataset.range(len(images))
    if shuffle:
        # An explicit seed drawn from numpy's generator (seeded by the step): the order must not depend on
        # how many random TensorFlow ops the process happened to create before.
        seed = int(np.random.randint(2**31 - 1))
        indices = indices.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    decoded = indices.batch(batch_size).map(fetch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if targets is None:
        batches = decoded.map(lambda pixels, ok, index: pixels)
    else:
        table = tf.constant(targets)
        batches = decoded.map(
            lambda pixels, ok, index: (tf.boolean_mask(pixels, ok), tf.boolean_mask(tf.gather(table, index), ok))
        )
    return batches.prefetch(tf.data.AUTOTUNE)


def predict_images(model: keras.Model, images: Images, batch_size: int = 32) -> np.ndarray:
    """``model``'s outputs for every image, in order, streamed from ``images``."""
    return model.predict(image_dataset(images, None, batch_size, shuffle=False), verbose=0)


class RichProgress(keras.callbacks.Callback):
    """One bar over all batches of all epochs, showing the running loss."""

    def __init__(self, description: str, total_batches: int) -> None:
        super().__init__()
        self.description = description
        self.total = total_batches
        self.progress = make_progress()
        self.task = None

    def on_train_begin(self, logs=None) -> None:  # noqa: ANN001
        self.progress.start()
        self.task = self.progress.add_task(self.description, total=self.total)

    def on_train_batch_end(self, batch, logs=None) -> None:  # noqa: ANN001
        loss = (logs or {}).get("loss")
        suffix = f" (loss {loss:.3f})" if loss is not None else ""
        self.progress.update(self.task, advance=1, description=f"{self.description}{suffix}")

    def on_train_end(self, logs=None) -> None:  # noqa: ANN001
        self.progress.stop()


def total_steps(samples: int, batch_size: int, epochs: int) -> int:
    """Optimizer steps of ``epochs`` passes over ``samples`` in batches (the last one partial)."""
    return int(np.ceil(samples / batch_size)) * epochs


def cosine_to_a_tenth(peak: float, steps: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """The rate every vggedge training run decays by: cosine from ``peak`` to a tenth of it over ``steps``,
    so a short run ends settled rather than on a noisy step."""
    return keras.optimizers.schedules.CosineDecay(peak, decay_steps=steps, alpha=0.1)


def fit(
    model: keras.Model,
    x: np.ndarray | Images,
    y: np.ndarray,
    epochs: int,
    batch_size: int,
    description: str,
    progress: bool = True,
    callbacks: list | None = None,
) -> list[float]:
    """``model.fit`` with shuffling, a rich progress bar instead of Keras' own, and extra callbacks.

    Returns the mean training loss of each epoch (rounded), which steps put in their record: a
    reader sees whether a fine-tune converged, and tests check that it learned.
    """
    callbacks = list(callbacks or [])
    if progress:
        callbacks.append(RichProgress(description, total_steps(len(x), batch_size, epochs)))
    if isinstance(x, np.ndarray):  # features already in memory (the GAP head's pooled features)
        history = model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=callbacks)
    else:
        data = image_dataset(x, y, batch_size, shuffle=True)
        history = model.fit(data, epochs=epochs, verbose=0, callbacks=callbacks)
    return [round(float(loss), 5) for loss in history.history.get("loss", [])]
