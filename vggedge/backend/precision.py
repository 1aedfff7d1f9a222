"""Which precision fine-tunes train in: mixed bfloat16 where the hardware runs it natively and it measures faster,
float32 elsewhere.

Under ``mixed_bfloat16`` the layers compute in bfloat16 while their variables (the master weights) stay float32,
so what a fine-tune hands on is an ordinary float32 model. CPUs with AVX-512 BF16 or AMX run bfloat16 natively
(a full VGG16 training step at 224x224 went 2.5x faster on an AMX Xeon, 2.0x on an AVX-512 BF16 EPYC:
``benchmarks/bf16_training.py``); AVX2-only CPUs emulate it and lose. The choice is made once per process by
measurement: a short probe (a few conv layers' training steps in each policy, ~2 s) on a CPU that has the
instructions; ``VGGEDGE_TRAINING_PRECISION`` (``float32``, ``mixed_bfloat16`` or ``auto``) overrides it. Every
step that fine-tunes records the precision it trained in.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import numpy as np

from vggedge.backend.keras_env import keras
from vggedge.core.errors import UserError
from vggedge.device.environment import cpu_features

FLOAT32, BFLOAT16 = "float32", "mixed_bfloat16"
ENVIRONMENT = "VGGEDGE_TRAINING_PRECISION"
NATIVE = ("avx512_bf16", "amx_bf16")  # x86 features that run bfloat16 arithmetic natively
MIN_GAIN = 1.3  # the probe must show at least this speed-up: a smaller one is within a probe's noise


@dataclasses.dataclass(frozen=True)
class Precision:
    policy: str
    reason: str

    def describe(self) -> str:
        return f"{self.policy} ({self.reason})"


@functools.lru_cache(maxsize=1)
def training_precision() -> Precision:
    """The precision of this process's fine-tunes (chosen once, then cached)."""
    asked = os.environ.get(ENVIRONMENT, "auto").strip().lower()
    if asked in (FLOAT32, BFLOAT16):
        return Precision(asked, f"{ENVIRONMENT}={asked}")
    if asked != "auto":
        raise UserError(f"{ENVIRONMENT}={asked!r}: use float32, mixed_bfloat16 or auto")
    native = [feature for feature in cpu_features() if feature in NATIVE]
    if not native:
        return Precision(FLOAT32, "this CPU has no native bfloat16 (no AVX-512 BF16 or AMX)")
    gain = probe_gain()
    if gain < MIN_GAIN:
        return Precision(FLOAT32, f"{'/'.join(native)}, but a bfloat16 step measured only {gain:.2f}x float32's")
    return Precision(BFLOAT16, f"{'/'.join(native)}: a bfloat16 step measured {gain:.2f}x faster than float32")


def _probe_model(policy: str) -> keras.Model:
    layers = [keras.layers.Conv2D(64, 3, padding="same", activation="relu", dtype=policy) for _ in range(3)]
    model = keras.Sequential([keras.Input((56, 56, 64)), *layers, keras.layers.GlobalAveragePooling2D(dtype=policy)])
    model.add(keras.layers.Dense(2, dtype="float32"))
    model.compile(keras.optimizers.SGD(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def probe_gain(steps: int = 3) -> float:
    """float32 step time over bfloat16 step time, medians of ``steps`` alternating training steps each."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 56, 56, 64)).astype(np.float32)
    y = rng.integers(0, 2, size=8)
    models = {policy: _probe_model(policy) for policy in (FLOAT32, BFLOAT16)}
    times: dict[str, list[float]] = {policy: [] for policy in models}
    for model in models.values():
        model.train_on_batch(x, y)  # tracing and first allocations
    for _ in range(steps):
        for policy, model in models.items():
            started = time.perf_counter()
            model.train_on_batch(x, y)
            times[policy].append(time.perf_counter() - started)
    return float(np.median(times[FLOAT32]) / max(np.median(times[BFLOAT16]), 1e-9))


def with_policy(model: keras.Model, policy: str) -> keras.Model:
    """A copy of the chain ``model`` whose layers compute in ``policy``, the output layer kept float32 (a softmax in
    bfloat16 rounds probabilities to 3 digits), the weights copied over."""
    last = model.layers[-1].name

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        config["dtype"] = FLOAT32 if layer.name == last else policy
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy_weights(model, copy)
    for original, twin in zip(model.layers, copy.layers, strict=True):
        twin.trainable = original.trainable
    return copy


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Layer by layer (a model's flat weight list is ordered by trainability, which may differ between the two)."""
    for original, twin in zip(source.layers, target.layers, strict=True):
        if original.weights:
            twin.set_weights(original.get_weights())
