"""How many epochs the offline sample needs: held-out top-1 and training time per schedule, over seeds.

The sample VGG16 (full VGG16 topology at 32x32, Dense 4096 x 2) is trained on first use by the README's
first command, so its schedule decides how long a newcomer waits. Each (epochs, seed) is trained in its
own process, interleaved (epochs vary fastest) so a slower minute of the machine hits every schedule
alike; top-1 is on the sample's 360 held-out evaluation images (vggedge.models.sample's split).

    python benchmarks/sample_schedule.py --epochs 3 4 6 --seeds 0 1 2

Writes ``reports/benchmarks/sample-schedule-<environment>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vggedge.device.environment import cpu_features, cpu_name  # noqa: E402

CHILD = """
import json, sys, time, dataclasses
from pathlib import Path
from vggedge.backend.keras_env import keras
from vggedge.models.vgg import build_vgg16
from vggedge.models.sample import TrainingPlan, load_sample_dataset, sample_spec, train_classifier
epochs, seed, lr, cache = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
plan = dataclasses.replace(TrainingPlan(), epochs=epochs, seed=seed, learning_rate=lr)
dataset = load_sample_dataset(cache, progress=False)
keras.utils.set_random_seed(seed)
model = build_vgg16(sample_spec(), initializer=plan.initializer, name="sample_vgg16")
started = time.perf_counter()
accuracy = train_classifier(model, dataset, plan, progress=False)
print(json.dumps({"top1": accuracy, "seconds": time.perf_counter() - started}))
"""


def train(epochs: int, seed: int, learning_rate: float, cache: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(epochs), str(seed), str(learning_rate), str(cache)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[3, 4, 6])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    args = parser.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="vggedge-schedule-"))
    results: dict[int, list[dict]] = {epochs: [] for epochs in args.epochs}
    for seed in args.seeds:
        for epochs in args.epochs:
            figures = train(epochs, seed, args.learning_rate, cache)
            results[epochs].append({**figures, "seed": seed})
            print(f"epochs {epochs} seed {seed}: top-1 {figures['top1']:.4f} in {figures['seconds']:.0f} s", flush=True)
    cpu = f"{cpu_name()} ({', '.join(cpu_features()) or 'no listed features'})"
    lines = [
        "# The sample VGG16's training schedule: held-out top-1 and time, over seeds",
        "",
        f"CPU: {cpu}, {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}. "
        f"Command: `python benchmarks/sample_schedule.py --epochs {' '.join(map(str, args.epochs))} "
        f"--seeds {' '.join(map(str, args.seeds))} --learning-rate {args.learning_rate}` (Adam, cosine to a tenth, "
        "batch 32; 1,337 training and 360 held-out images). Times are this machine's, in one interleaved run.",
        "",
        "| epochs | top-1 per seed | min | median | training s (median) |",
        "|---|---|---|---|---|",
    ]
    for epochs, runs in results.items():
        top1 = [run["top1"] for run in runs]
        per_seed = ", ".join(f"{run['seed']}: {run['top1']:.2%}" for run in runs)
        seconds = statistics.median(run["seconds"] for run in runs)
        lines.append(f"| {epochs} | {per_seed} | {min(top1):.2%} | {statistics.median(top1):.2%} | {seconds:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    slug = re.sub(r"[^a-z0-9]+", "-", f"{platform.machine()} {cpu_name()} {os.cpu_count()}cores".lower()).strip("-")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"sample-schedule-{slug}.md").write_text(text)


if __name__ == "__main__":
    main()
