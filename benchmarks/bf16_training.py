"""Training-step time of a full VGG16 at 224x224 in float32 against mixed bfloat16, side by side in one process.

    python benchmarks/bf16_training.py [--steps 6] [--batch 8] [--out reports/benchmarks]

What vggedge's fine-tunes would gain from ``mixed_bfloat16`` on this CPU: two tf_keras VGG16s (random weights,
2 classes, Adam), one per policy, trained step by step in alternation so that machine noise hits both alike;
medians of the per-step times after a warm-up step each. The CPU's features are recorded with the figures (AMX and
AVX-512 BF16 run bfloat16 natively; AVX2-only CPUs emulate it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def build(policy: str, seed: int = 0):  # noqa: ANN201
    from vggedge.backend.keras_env import keras

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(seed)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    x = keras.layers.GlobalAveragePooling2D()(base.output)
    outputs = keras.layers.Dense(2, activation="softmax", dtype="float32")(x)
    model = keras.Model(base.input, outputs)
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
    keras.mixed_precision.set_global_policy("float32")
    return model


def main() -> None:
    from fullsize import environment_name

    from vggedge.device.environment import cpu_features

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(args.batch, 224, 224, 3)).astype(np.float32)
    y = rng.integers(0, 2, size=args.batch)
    models = {policy: build(policy) for policy in ("float32", "mixed_bfloat16")}
    times: dict[str, list[float]] = {policy: [] for policy in models}
    for model in models.values():
        model.train_on_batch(x, y)  # warm-up: tracing and first allocations
    for _ in range(args.steps):
        for policy, model in models.items():
            started = time.perf_counter()
            model.train_on_batch(x, y)
            times[policy].append(time.perf_counter() - started)
    fp32, bf16 = statistics.median(times["float32"]), statistics.median(times["mixed_bfloat16"])
    features = [f for f in cpu_features() if "bf16" in f or "amx" in f or f in ("avx2", "avx512f")]
    text = "\n".join(
        [
            "# Fine-tune step: float32 against mixed bfloat16 (full VGG16 base + GAP head, 224x224)",
            "",
            f"`python benchmarks/bf16_training.py --steps {args.steps} --batch {args.batch}` on {environment_name()} "
            f"(features: {', '.join(features)}); tf_keras, Adam, batch {args.batch}; medians of {args.steps} steps "
            "each after one warm-up, the two models alternating.",
            "",
            "| policy | median step s | all steps s |",
            "|---|---|---|",
            *(f"| {p} | {statistics.median(t):.2f} | {' '.join(f'{v:.2f}' for v in t)} |" for p, t in times.items()),
            "",
            f"mixed bfloat16 is **{fp32 / bf16:.2f}x** the speed of float32 here.",
            "",
        ]
    )
    path = args.out / f"bf16-training-{environment_name()}.md"
    path.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
