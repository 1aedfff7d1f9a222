"""Every shipped recipe on VGG16-BN at VGG16's own width (64..512 filters), once, with the recipes' full fine-tunes.

The suite runs the BatchNormalization form at 1/4 of the width with fine-tunes cut short; this is the
measurement at full width that the suite's form stands in for. The form (tests/forms.py ``batch_norm``:
``Conv2D(use_bias=False) -> BatchNormalization -> ReLU`` in every block, a normalized dense head) is trained
on the sample's digit images, saved as a user would save it (``.keras``), then `vggedge optimize --recipe all`
runs on the file with the default budgets.

    python benchmarks/batch_norm_full_width.py [--width-scale 4] [--epochs 6] [--seed 0]

Prints a Markdown table and appends it to ``reports/benchmarks/batch-norm-full-width.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from measure import run_measured  # noqa: E402

RECIPES = ("fp16", "dynamic", "int8", "int8-qat", "prune", "gap", "gap-int8", "edge", "fast")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width-scale", type=int, default=4, help="x the suite's 1/4-width form (4: VGG16's own)")
    # 6 epochs (the suite's) left the full-width form right in training mode (98.7% of 300 images) and at 15% in
    # inference mode: ~200 steps do not settle BatchNormalization's moving statistics (momentum 0.99) at this width.
    parser.add_argument("--epochs", type=int, default=15, help="training epochs of the form")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-samples", type=int, default=360)
    args = parser.parse_args()

    from vggedge.core.cache import default_cache_dir
    from vggedge.device.environment import cpu_features, cpu_name
    from vggedge.models.sample import sample_images_dir

    data = sample_images_dir(default_cache_dir())
    work = Path(tempfile.mkdtemp(prefix="vggedge-bn-"))
    model = work / "vgg16_bn.keras"
    train = [sys.executable, str(ROOT / "tests" / "forms.py"), "batch_norm", str(data), str(model)]
    train += ["--seed", str(args.seed), "--width-scale", str(args.width_scale), "--epochs", str(args.epochs)]
    trained = run_measured(train)
    if trained.exit_code:
        sys.exit(f"training the form failed: {trained.last_error_line()}")
    optimize = [sys.executable, "-m", "vggedge", "optimize", "--recipe", "all", "--model", str(model)]
    optimize += ["--data", str(data), "--out", str(work / "runs"), "--eval-samples", str(args.eval_samples)]
    optimize += ["--seed", str(args.seed)]
    optimized = run_measured(optimize)
    if optimized.exit_code not in (0, 1):  # 1: a recipe ended not ok (over budget, failed verification): a row
        sys.exit(f"optimize failed: {optimized.last_error_line()}")

    rows, baseline = [], None
    for name in RECIPES:
        report = json.loads((work / "runs" / name / "report.json").read_text())
        result, baseline = report["result"], report["baseline"]
        steps_s = (result.get("timing") or {}).get("steps_s")
        if result.get("top1") is None:  # failed export: no figures
            rows.append(f"| {name} | {result['status']} | — | — | — | — | — | {steps_s} |")
            continue
        rows.append(
            f"| {name} | {result['status']} | {result['top1'] * 100:.2f}% | "
            f"{report['ratios']['top1_delta_pts']:+.2f} | "
            f"{result['verification']['agreement']:.3f} | {result['size_bytes'] / 1e6:.2f} | "
            f"{report['ratios']['size']:.1f} | {steps_s} |"
        )
    widths = [16 * args.width_scale, 32 * args.width_scale, 64 * args.width_scale, 128 * args.width_scale]
    lines = [
        f"## VGG16-BN, widths {widths[0]}..{widths[-1]}, every recipe (seed {args.seed})",
        "",
        f"Machine: {cpu_name()} ({', '.join(cpu_features())}). Form trained {args.epochs} epochs on the sample's "
        f"digits in {trained.wall_s:.0f} s; baseline top-1 {baseline['top1'] * 100:.2f}% on {args.eval_samples} "
        f"evaluation images, {baseline['size_bytes'] / 1e6:.1f} MB float32. `optimize --recipe all` "
        f"(full fine-tunes, default budgets): {optimized.wall_s:.0f} s, peak {optimized.peak_rss_gb:.2f} GB.",
        "",
        "| recipe | status | top-1 | Δ pts | agreement with Keras | MB | × smaller | steps s |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    text = "\n".join(lines)
    print(text)
    target = ROOT / "reports" / "benchmarks" / "batch-norm-full-width.md"
    header = "" if target.exists() else "# VGG16-BN at full width: every shipped recipe\n\n"
    with target.open("a") as stream:
        stream.write(header + text + "\n")


if __name__ == "__main__":
    main()
