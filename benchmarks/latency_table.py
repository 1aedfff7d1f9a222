"""How well a profiled latency table predicts whole models: the kit of a model, `bench --profile`, then shapes.

NetAdapt's lookup tables sum per-layer latencies; whether that sum predicts a TFLite model's time (and, what the
search needs, ranks shapes as the interpreter does) is measured here, on this machine as the device:

1. ``vggedge kit`` of the model (all eight levels by default), timing the kit build;
2. ``vggedge bench --profile`` at the target's threads, timing the profile;
3. ``--shapes`` random per-block shapes (seeded), with the GAP head the search ends with (and the kept head for a
   few), built from the same pieces, converted to int8 and timed *whole*, each alone (as an application runs it);
4. per shape: predicted (table) against measured; the median and largest absolute error, and Spearman's rank
   correlation between the two (1.0: the table orders shapes as the interpreter does). Beside it, the search's own
   latency model when it times here (MACs and weights fitted by least squares over the shapes) on the same shapes.

    python benchmarks/latency_table.py [--model sample] [--keep 1,7/8,...] [--shapes 24] [--threads 2]

Writes ``reports/benchmarks/latency-table-<environment>.md``. Figures are this machine's (a CPU, not a Pi).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fullsize import environment_name  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sample")
    parser.add_argument("--keep", default=None, help="kept fractions for the kit (default: all eight levels)")
    parser.add_argument("--shapes", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=0.25, help="bench --profile's seconds per file")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    args = parser.parse_args()

    import numpy as np
    from scipy.optimize import nnls
    from scipy.stats import spearmanr

    from vggedge.auto.kit import KitBuilder, build_kit, head_variants, parse_keep
    from vggedge.auto.rules import LEVELS
    from vggedge.core.cache import default_cache_dir
    from vggedge.core.quantization import Quantization
    from vggedge.device.latency_table import LatencyTable
    from vggedge.device.profile import ProfileOptions, profile, time_file
    from vggedge.device.runtime import find_runtime
    from vggedge.export.convert import convert
    from vggedge.models.flops import count_macs
    from vggedge.models.loading import load_baseline
    from vggedge.steps.filters import thin_counts

    if args.model == "sample":
        from vggedge.models.sample import load_sample_dataset

        cache = default_cache_dir()
        baseline = load_baseline("sample", None, None, load_sample_dataset(cache, progress=False), False, cache)
    else:
        baseline = load_baseline(args.model, "random" if args.model == "vgg16" else None, None, progress=False)
    model = baseline.model
    levels = parse_keep(args.keep) if args.keep else None
    work = Path(tempfile.mkdtemp(prefix="vggedge-table-bench-"))
    started = time.perf_counter()
    manifest = build_kit(model, work / "kit", levels)
    kit_s = time.perf_counter() - started
    files = len(manifest["entries"]) + len(manifest["wholes"])
    kit_mb = sum(p.stat().st_size for p in (work / "kit").rglob("*.tflite")) / 1e6
    print(f"kit: {files} files, {kit_mb:.1f} MB in {kit_s:.0f} s", flush=True)
    started = time.perf_counter()
    table_path = profile(ProfileOptions(kit=work / "kit", threads=args.threads, seconds=args.seconds, progress=False))
    profile_s = time.perf_counter() - started
    table = LatencyTable.load(table_path)
    drift = json.loads(table_path.read_text())["whole_drift_pct"]
    print(f"profile: {profile_s:.0f} s; checks {table.checks}", flush=True)

    builder = KitBuilder(model)
    blocks = len(builder.anatomy.blocks)
    rng = np.random.default_rng(0)
    heads = head_variants(builder.anatomy)
    shapes = [([0] * blocks, heads[-1])]
    while len(shapes) < args.shapes:
        shape = sorted(rng.choice(table.levels, blocks).tolist())  # the search thins later blocks no less, often
        shape = rng.permutation(shape).tolist() if rng.random() < 0.5 else shape
        head = heads[-1] if rng.random() < 0.8 else heads[0]
        if (shape, head) not in shapes:
            shapes.append((shape, head))
    runtime = find_runtime()
    counts, paths = [], []
    pixels = rng.uniform(0, 255, (4, *model.input_shape[1:])).astype(np.float32)
    for number, (shape, head) in enumerate(shapes):
        whole = builder.whole(shape, head)
        counts.append((count_macs(whole), thin_counts(whole, {})[1]))
        paths.append(work / f"shape{number}.tflite")
        paths[-1].write_bytes(convert(whole, Quantization.INT8, pixels))
    # Each shape invoked back to back, as an application runs one model and as the profile times its whole models
    # (interleaving 24 models makes each one's weights leave the cache between calls: slower than any of them runs
    # alone); two passes in opposite orders, their mean.
    passes = [
        {path: time_file(path, runtime, args.threads, 1.0, 200, 2) for path in order} for order in (paths, paths[::-1])
    ]
    measured = [(passes[0][path] + passes[1][path]) / 2 for path in paths]
    predicted = [table.predict(shape, head) for shape, head in shapes]
    errors = [100 * (p - m) / m for p, m in zip(predicted, measured, strict=True)]
    # The search's own latency model, fitted on these same measured shapes (its best case: in the search it is fitted
    # on the shapes measured so far).
    design = np.array([[macs / 1e6, weights / 1e6, 1.0] for macs, weights in counts])
    coefficients, _ = nnls(design, np.array(measured))
    fitted = design @ coefficients
    fit_errors = [100 * (f - m) / m for f, m in zip(fitted, measured, strict=True)]

    rows = [
        f"| {'-'.join(str(level) for level in shape)} | {head} | {p:.4f} | {m:.4f} | {e:+.1f} | {f:+.1f} |"
        for (shape, head), p, m, e, f in zip(shapes, predicted, measured, errors, fit_errors, strict=True)
    ]
    table_rho = spearmanr(predicted, measured).statistic
    fit_rho = spearmanr(fitted, measured).statistic
    text = "\n".join(
        [
            f"# The latency table against whole models ({baseline.source})",
            "",
            f"Environment: `{environment_name()}`, {runtime.name} {runtime.version}, {args.threads} threads; command: "
            f"`python benchmarks/latency_table.py --model {args.model} --shapes {args.shapes} --threads {args.threads}"
            f"{' --keep ' + args.keep if args.keep else ''}`. This machine stands in for the device: a CPU, not a Pi.",
            "",
            f"- Kit: {files} files ({len(manifest['entries'])} pieces, {len(manifest['wholes'])} whole models), "
            f"{kit_mb:.1f} MB, built in {kit_s:.0f} s; levels kept: "
            + ", ".join(f"{1 - LEVELS[level]:.3g}" for level in table.levels)
            + ".",
            f"- `bench --profile` ({args.seconds} s per file): {profile_s:.0f} s; drift of the whole models before and "
            f"after the pieces {drift:.1f}%.",
            f"- {len(shapes)} shapes timed whole, each alone for at least 1 s (p50), in two passes of opposite order "
            "(their mean).",
            f"- **Table: median absolute error {np.median(np.abs(errors)):.1f}%, "
            f"largest {np.max(np.abs(errors)):.1f}%, "
            f"Spearman's rank correlation {table_rho:.3f}.**",
            "- The search's MACs-and-weights latency model, fitted on these very measurements (its best case): "
            f"median "
            f"{np.median(np.abs(fit_errors)):.1f}%, largest {np.max(np.abs(fit_errors)):.1f}%, rank correlation "
            f"{fit_rho:.3f}.",
            "",
            "Levels per block: 0 keeps every filter, 7 keeps 1/8.",
            "",
            "| levels | head | table ms | measured ms | table error % | fitted-model error % |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"latency-table-{environment_name()}.md"
    out.write_text(text)
    print(text)
    print(f"written: {out}")


if __name__ == "__main__":
    main()
