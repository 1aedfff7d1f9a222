"""`--recipe auto`'s per-candidate loop on the full-size VGG16 (224 pixels, 138M parameters): seconds and memory.

The search cannot rank a random-weights model by accuracy, so this measures its machinery only, on Keras' VGG16
with random weights and random images (the figures that do not depend on the weights: time and memory):

- the starting point as the search measures it: int8 conversion (100 calibration images), top-1 on the search
  split, timing at the target's threads; with the flatten head, then with the GAP head (its layer set up on the
  images, not trained: nothing to learn from random weights);
- from the GAP model, one candidate per block as the first iteration proposes them (block 5 first): filters
  removed, every layer after the cut refitted by least squares on 256 images (vggedge.steps.reconstruct), then
  measured as above; each one's seconds (refit and measure apart) and peak resident memory;
- one cut of block 5 under the flatten head: its dense layer refits on 25,089 inputs.

Everything runs in one child process (tree-wide peak memory by benchmarks/measure.py); inside it, a sampler
thread reads the process's resident memory every 20 ms and gives each step its own peak.

    python benchmarks/auto_fullsize.py [--blocks 5,4,3,2,1] [--threads 2]

Writes ``reports/benchmarks/auto-fullsize-<environment>.md``. The validation of the path's shapes (the
final fine-tunes) is not measured: it is a fine-tune on the user's images, whose time the data sets.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fullsize import environment_name  # noqa: E402
from measure import run_measured  # noqa: E402

CHILD = r"""
import json, sys, threading, time
import numpy as np

threads, blocks, progress = int(sys.argv[1]), [int(b) for b in sys.argv[2].split(",")], sys.argv[3]


class Peak:
    # The process's resident memory, sampled; reset() starts a new step's peak.
    def __init__(self):
        self.value, self.stop = 0, False
        threading.Thread(target=self.run, daemon=True).start()

    def now(self):
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096

    def run(self):
        while not self.stop:
            self.value = max(self.value, self.now())
            time.sleep(0.02)

    def reset(self):
        self.value = self.now()
        return self


peak = Peak()


def emit(what, started, **extra):
    line = json.dumps({"what": what, "seconds": round(time.perf_counter() - started, 1),
                       "peak_gb": round(peak.value / 1e9, 2), **extra})
    print(line, flush=True)
    with open(progress, "a") as log:  # watched while it runs: a block-1 cut takes minutes
        log.write(line + "\n")


from vggedge.core.data import Split
from vggedge.models.loading import load_imagenet_vgg16
from vggedge.recipe.schema import HeadStep
from vggedge.auto.rules import SearchOptions
from vggedge.auto.searcher import Searcher
from vggedge.steps import StepContext, apply_step
from vggedge.steps.reconstruct import REFIT_IMAGES

rng = np.random.default_rng(0)


def split(count):
    images = rng.integers(0, 256, size=(count, 224, 224, 3), dtype=np.uint8)
    return Split(images, np.zeros(count, np.int64), [f"random/{i}" for i in range(count)])


started = time.perf_counter()
peak.reset()
baseline = load_imagenet_vgg16("random").model
search, tune, calibration = split(32), split(REFIT_IMAGES), split(100).images
context = StepContext(tune, None, progress=False)
options = SearchOptions(threads=threads, runs=5, search_images=32)
searcher = Searcher(baseline, search, tune, calibration, False, options, context)
emit("load VGG16 (random weights) and set up the search", started)

started = time.perf_counter()
peak.reset()
flatten = searcher.measure(baseline, 0, None, [0] * 5, "kept")
flatten_flatbuffer = searcher.last_flatbuffer
emit("start, flatten head: convert int8, top-1, time", started, latency_ms=flatten.latency_ms,
     size_mb=round(flatten.size_bytes / 1e6, 2))

started = time.perf_counter()
peak.reset()
structural = StepContext.synthetic_for(224, False)  # sets the new layer up, trains nothing (random weights)
gap_model = apply_step(HeadStep(train="distill", init="lstsq", epochs=5), baseline, structural).model
gap = searcher.measure(gap_model, 0, None, [0] * 5, "gap", against=flatten_flatbuffer)
gap_flatbuffer = searcher.last_flatbuffer
emit("start, GAP head: swap, convert int8, top-1, time beside the flatten model", started,
     latency_ms=gap.latency_ms, size_mb=round(gap.size_bytes / 1e6, 2), speedup=gap.speedup)

level = 4  # keep 1/2: a first iteration's typical proposal
for start, head, flatbuffer, label in [(gap_model, "gap", gap_flatbuffer, "GAP head"),
                                       (baseline, "kept", flatten_flatbuffer, "flatten head")]:
    searcher.start_model = start
    for block in blocks if head == "gap" else [5]:
        started = time.perf_counter()
        peak.reset()
        thin, _ = searcher.thinner(start, {}, block - 1, level)
        refit_s = round(time.perf_counter() - started, 1)
        refit_peak = round(peak.value / 1e9, 2)
        levels = [level if b == block - 1 else 0 for b in range(5)]
        measured = searcher.measure(thin, 1, block, levels, head, against=flatbuffer)
        emit(f"block {block} to 1/2 under the {label}: thin, refit, convert int8, top-1, time", started,
             refit_s=refit_s, refit_peak_gb=refit_peak, measure_s=measured.seconds,
             latency_ms=measured.latency_ms, speedup=measured.speedup, size_mb=round(measured.size_bytes / 1e6, 2))
        del thin
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", default="5,4,3,2,1", help="blocks cut from the GAP model, in this order")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(CHILD)
    progress = Path(script.name).with_suffix(".log")
    print(f"each step's line as it ends: {progress}", flush=True)
    run = run_measured([sys.executable, script.name, str(args.threads), args.blocks, str(progress)], cwd=ROOT)
    rows = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    if run.exit_code != 0:
        print(run.stderr[-3000:], file=sys.stderr)
    lines = [
        "# `--recipe auto` per candidate on the full-size VGG16 (224 pixels, random weights)",
        "",
        f"Environment: `{environment_name()}`; command: `python benchmarks/auto_fullsize.py --blocks {args.blocks} "
        f"--threads {args.threads}`. Random weights and random images: time and memory only (a search needs a "
        "trained model to rank by accuracy). Timing at the target's threads, side by side with the current model; "
        "one process, each step's peak resident memory from a 20 ms sampler.",
        "",
        "| step | seconds | of which refit s | peak RSS GB | p50 ms | × vs current | int8 MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['what']} | {row['seconds']:.1f} | {row.get('refit_s', '—')} | {row['peak_gb']:.2f} | "
            f"{format(row['latency_ms'], '.1f') if row.get('latency_ms') else '—'} | {row.get('speedup') or '—'} | "
            f"{row.get('size_mb', '—')} |"
        )
    lines += [
        "",
        f"Whole process: {run.wall_s:.0f} s, peak RSS {run.peak_rss_gb:.2f} GB (process tree), exit code "
        f"{run.exit_code}{'' if run.exit_code == 0 else ': ' + run.last_error_line()}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"auto-fullsize-{environment_name()}.md").write_text(text)


if __name__ == "__main__":
    main()
