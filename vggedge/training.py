"""Training loops shared by the sample model and the fine-tuning steps, with a progress bar."""

from __future__ import annotations

import numpy as np

from vggedge.keras_env import keras
from vggedge.progress import make_progress


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
    x: np.ndarray,
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
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=callbacks)
    return [round(float(loss), 5) for loss in history.history.get("loss", [])]
