"""Training loops shared by the sample model and the fine-tuning steps, with a progress bar, and the
``tf.data`` input pipeline that streams images from disk into them.

Images come from a :class:`~vggedge.core.data.Split` (decoded arrays: the sample, synthetic images) or a
:class:`~vggedge.core.data.FileSplit` (files on disk: a user's training folder of any size). Both go
through the same pipeline: an index dataset, shuffled per epoch, mapped to pixels by the data module's
own decoder (Pillow, the same RGB conversion and resize as evaluation, so figures do not depend on the
path taken) on parallel threads, batched and prefetched. Memory holds a few batches, not the data set.
"""

from __future__ import annotations

import math
import time

import numpy as np

from vggedge.backend.distribute import Batching, Placement, one_device
from vggedge.backend.keras_env import keras, tf
from vggedge.core.data import FileSplit, Split
from vggedge.core.progress import duration, log_line, make_progress, on_terminal

Images = Split | FileSplit


def image_size(images: Images) -> int:
    return images.size if isinstance(images, FileSplit) else int(images.images.shape[1])


def _decoder(images: Images):  # noqa: ANN202 - a tf.function-compatible callable
    """indices -> (uint8 pixels, decoded ok) for a batch of indices, decoded by Pillow in one call.

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
        if getattr(images, "missing", None):  # files vanished: stop now, the caller says so in one line
            raise FileNotFoundError(f"{len(images.missing)} training images vanished from disk")
        return pixels, ok

    def fetch(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        pixels, ok = tf.numpy_function(load_batch, [indices], (tf.uint8, tf.bool), stateful=False)
        pixels.set_shape((None, size, size, 3))
        ok.set_shape((None,))
        return pixels, ok, indices

    return fetch


def _rows(features: np.ndarray):  # noqa: ANN202
    """indices -> (rows, ok, indices) of an in-memory array (the GAP head's pooled features)."""
    table = tf.constant(features)

    def fetch(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        return tf.gather(table, indices), tf.ones_like(indices, tf.bool), indices

    return fetch


def _with_targets(decoded: tf.data.Dataset, targets: np.ndarray | None) -> tf.data.Dataset:
    """Without targets (prediction) every row stays, failed decodes as black images, so outputs align
    with the file list; with targets, rows that failed to decode are left out."""
    if targets is None:
        return decoded.map(lambda pixels, ok, index: pixels)
    table = tf.constant(targets)
    return decoded.map(
        lambda pixels, ok, index: (tf.boolean_mask(pixels, ok), tf.boolean_mask(tf.gather(table, index), ok))
    )


def _shuffle_seed() -> int:
    """An explicit seed drawn from numpy's generator (seeded by the step): the order must not depend on
    how many random TensorFlow ops the process happened to create before, and every worker of a
    cluster, seeded alike, draws the same one."""
    return int(np.random.randint(2**31 - 1))


def image_dataset(images: Images, targets: np.ndarray | None, batch_size: int, shuffle: bool) -> tf.data.Dataset:
    """Batches of uint8 pixels (and targets), decoded on parallel threads; shuffled per epoch when asked
    (seeded by the caller's global seed). With targets, images that fail to decode are left out; without
    (prediction), they are a black image so outputs stay aligned with the file list."""
    indices = tf.data.Dataset.range(len(images))
    if shuffle:
        indices = indices.shuffle(len(images), seed=_shuffle_seed(), reshuffle_each_iteration=True)
    decoded = indices.batch(batch_size).map(_decoder(images), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return _with_targets(decoded, targets).prefetch(tf.data.AUTOTUNE)


def replica_index_batches(
    count: int, plan: Batching, seed: int, pipeline: int, pipelines: int, replicas: int
) -> tf.data.Dataset:
    """Index batches for one input pipeline (one worker), endless: epoch after epoch, every worker
    shuffles the same indices with the same seed, cuts them into full global batches, and keeps its
    own slice of each, one index batch per local replica. Every worker thus runs the same number of
    steps, and no image is decoded twice or by the wrong worker."""
    replicas_here = replicas // pipelines
    width = plan.per_replica * replicas_here
    start = pipeline * width
    order = tf.data.Dataset.range(count).shuffle(count, seed=seed, reshuffle_each_iteration=True)
    # Repeated: Keras keeps one iterator of a distributed dataset across epochs (steps_per_epoch says
    # where an epoch ends); each repetition reshuffles, so every epoch is a new pass in a new order.
    global_batches = order.batch(plan.global_batch, drop_remainder=True).repeat()
    return global_batches.flat_map(
        lambda batch: tf.data.Dataset.from_tensor_slices(
            tf.reshape(batch[start : start + width], (replicas_here, plan.per_replica))
        )
    )


def distributed_dataset(
    source: Images | np.ndarray, targets: np.ndarray, plan: Batching, placement: Placement
) -> tf.distribute.DistributedDataset:
    """Training batches for a distributed placement: one input pipeline per worker, each decoding only
    its own slice of every global batch (see :mod:`vggedge.backend.distribute` for the rules)."""
    fetch = _rows(source) if isinstance(source, np.ndarray) else _decoder(source)
    seed = _shuffle_seed()

    def pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        indices = replica_index_batches(
            len(source), plan, seed, context.input_pipeline_id, context.num_input_pipelines, placement.replicas
        )
        decoded = indices.map(fetch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return _with_targets(decoded, targets).prefetch(tf.data.AUTOTUNE)

    return placement.strategy.distribute_datasets_from_function(pipeline)


def predict_images(model: keras.Model, images: Images, batch_size: int = 32) -> np.ndarray:
    """``model``'s outputs for every image, in order, streamed from ``images``."""
    return model.predict(image_dataset(images, None, batch_size, shuffle=False), verbose=0)


class TrainingProgress(keras.callbacks.Callback):
    """On a terminal, one bar over all images of all epochs (images/s, time left, the running loss); in a
    log, one line per epoch (loss, images/s, time elapsed and left)."""

    def __init__(self, description: str, plan: Batching, epochs: int) -> None:
        super().__init__()
        self.description = description
        self.plan = plan
        self.epochs = epochs
        self.total = plan.images_per_epoch * epochs
        self.bar = make_progress() if on_terminal() else None
        self.task = None
        self.started = 0.0

    def on_train_begin(self, logs=None) -> None:  # noqa: ANN001
        self.started = time.perf_counter()
        if self.bar is not None:
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=self.total)

    def on_train_batch_end(self, batch, logs=None) -> None:  # noqa: ANN001
        if self.bar is None:
            return
        loss = (logs or {}).get("loss")
        suffix = f" (loss {loss:.3f})" if loss is not None else ""
        last = batch == self.plan.steps_per_epoch - 1
        images = self.plan.images_per_epoch - batch * self.plan.global_batch if last else self.plan.global_batch
        self.bar.update(self.task, advance=images, description=f"{self.description}{suffix}")

    def on_epoch_end(self, epoch, logs=None) -> None:  # noqa: ANN001
        if self.bar is not None:
            return
        elapsed = time.perf_counter() - self.started
        done = epoch + 1
        rate = done * self.plan.images_per_epoch / elapsed if elapsed > 0 else 0.0
        loss = (logs or {}).get("loss")
        text = f"{self.description}: epoch {done}/{self.epochs}"
        text += f", loss {loss:.4f}" if loss is not None else ""
        text += f", {rate:.0f} images/s, {duration(elapsed)}"
        if done < self.epochs:
            text += f", about {duration(elapsed / done * (self.epochs - done))} left"
        log_line(text)

    def on_train_end(self, logs=None) -> None:  # noqa: ANN001
        if self.bar is not None:
            self.bar.stop()


class PlateauStop(keras.callbacks.EarlyStopping):
    """Early stopping on held-apart images: stop once their loss has not improved for ``patience`` epochs and
    hand on the best epoch's weights; the step's epochs are the cap. Keeps each epoch's held-apart loss.

    ``start_loss``, the held-apart loss before training, makes the starting weights a candidate too (epoch 0): when
    no epoch beats it, they are handed on. A least-squares refit can leave a cut model closer to the one it came
    from than any epoch of a fine-tune gets it (the real-photo VGG16: a first epoch at loss 16.1, then ln 2)."""

    def __init__(self, patience: int = 2, start_loss: float | None = None) -> None:
        super().__init__(monitor="val_loss", patience=patience, min_delta=1e-3, restore_best_weights=True)
        self.held_apart_losses: list[float | None] = []
        self.start_loss = start_loss
        self.start_weights: list | None = None
        self.handed_on_start = False

    def on_train_begin(self, logs=None) -> None:  # noqa: ANN001
        super().on_train_begin(logs)
        if self.start_loss is not None:
            self.start_weights = self.model.get_weights()

    def on_epoch_end(self, epoch, logs=None) -> None:  # noqa: ANN001
        if (logs or {}).get("val_loss") is not None:  # a NaN or infinite loss is recorded as None (JSON null)
            loss = float(logs["val_loss"])
            self.held_apart_losses.append(round(loss, 5) if math.isfinite(loss) else None)
        super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None) -> None:  # noqa: ANN001
        super().on_train_end(logs)
        if self.start_weights is not None and self.held_apart_losses:
            # a NaN or infinite loss (a learning rate that blew the weights up) never beats the start
            finite = [loss for loss in self.held_apart_losses if loss is not None]
            self.handed_on_start = not finite or min(finite) > self.start_loss - self.min_delta
            if self.handed_on_start:
                self.model.set_weights(self.start_weights)
        self.start_weights = None

    def figures(self) -> dict:
        """For the step's record: the held-apart loss before training and per epoch, the epoch handed on (1-based;
        0: the starting weights), whether it stopped."""
        best = 0 if self.handed_on_start else (self.best_epoch + 1 if self.held_apart_losses else None)
        return {
            "held_apart_loss_before": None if self.start_loss is None else round(float(self.start_loss), 5),
            "held_apart_loss_per_epoch": self.held_apart_losses,
            "best_epoch": best,
            "stopped_early": bool(self.stopped_epoch),
        }


def total_steps(samples: int, batch_size: int, epochs: int, placement: Placement | None = None) -> int:
    """Optimizer steps of ``epochs`` passes over ``samples`` at a recipe's ``batch_size`` (per replica)."""
    return (placement or one_device()).batching(samples, batch_size).steps_per_epoch * epochs


def cosine_to_a_tenth(peak: float, steps: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """The rate every vggedge training run decays by: cosine from ``peak`` to a tenth of it over ``steps``,
    so a short run ends settled rather than on a noisy step."""
    return keras.optimizers.schedules.CosineDecay(peak, decay_steps=max(1, steps), alpha=0.1)


def fit(
    model: keras.Model,
    x: np.ndarray | Images,
    y: np.ndarray,
    epochs: int,
    batch_size: int,
    description: str,
    progress: bool = True,
    callbacks: list | None = None,
    placement: Placement | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[float]:
    """``model.fit`` with shuffling, a rich progress bar instead of Keras' own, and extra callbacks.

    ``model`` must have been built and compiled under ``placement.strategy.scope()`` (the steps do);
    ``batch_size`` is per replica. ``validation`` (images, targets in memory) is scored after every epoch, for
    callbacks that watch it (one device only). Returns the mean training loss of each epoch (rounded), which steps
    put in their record: a reader sees whether a fine-tune converged, and tests check that it learned.
    """
    placement = placement or one_device()
    plan = placement.batching(len(x), batch_size)
    callbacks = list(callbacks or [])
    if progress and placement.is_chief:
        callbacks.append(TrainingProgress(description, plan, epochs))
    if placement.distributed:
        data = distributed_dataset(x, y, plan, placement)
        history = model.fit(data, epochs=epochs, steps_per_epoch=plan.steps_per_epoch, verbose=0, callbacks=callbacks)
    elif isinstance(x, np.ndarray):  # features already in memory (the GAP head's pooled features)
        history = model.fit(
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=True,
            verbose=0,
            callbacks=callbacks,
            validation_data=validation,
        )
    else:
        data = image_dataset(x, y, batch_size, shuffle=True)
        history = model.fit(data, epochs=epochs, verbose=0, callbacks=callbacks, validation_data=validation)
    return [round(float(loss), 5) for loss in history.history.get("loss", [])]
