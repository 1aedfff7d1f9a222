"""`--recipe auto` against the fixed recipes on the sample, side by side: latency, size and top-1.

Runs `vggedge optimize --recipe int8,fast,edge` and `vggedge optimize --recipe auto --max-drop 1` on the
offline sample, each in its own process (wall time, peak memory), then times every resulting model and
the baseline's float32 TFLite interleaved (one invocation of each per round, at 1 and 2 threads) so machine
noise hits every row alike, and writes the table with the search's own figures (candidates, seconds per
candidate, why it stopped).

    python benchmarks/auto_search.py --search-minutes 20 [--goal latency|size]

Writes ``reports/benchmarks/auto-search-<environment>-<goal>.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fullsize import environment_name, time_interleaved  # noqa: E402
from measure import run_measured  # noqa: E402

FIXED = ("int8", "fast", "edge")


def optimize(args: list[str], cache: Path) -> dict:
    run = run_measured([sys.executable, "-m", "vggedge", "optimize", "-q", "--cache-dir", str(cache), *args])
    if run.exit_code not in (0, 1):
        raise SystemExit(f"optimize {' '.join(args)} failed: {run.last_error_line()}")
    return {"seconds": run.wall_s, "peak_gb": run.peak_rss_gb}


def stretch_sentence(search: dict, validated: list[dict]) -> str:
    """What the descents proposed and what the validations (the final fine-tunes) decided."""
    stretch = search.get("stretch") or {}
    proposed = sum(c.get("stage") == "stretch" and c["kept"] for c in search["candidates"])
    if not stretch:
        return ""
    verdicts = ", ".join(
        f"keep {' '.join(f'{1 - r:.3g}' for r in c['block_ratios'])} · {c['head']}: {-c['drop_pts']:+.2f} pts "
        f"({c.get('lost', '?')} lost, {c.get('gained', '?')} gained; bound {c.get('drop_bound_pts', '?')}) "
        f"in {c['seconds']:.0f} s" + (" (passed)" if c.get("passed", c["kept"]) else " (over)")
        for c in validated
    )
    chosen = (search.get("validation") or {}).get("chosen")
    return (
        f"Stretch under a {stretch['bar_pts']:g}-point bar: {proposed} shapes proposed ({stretch['stopped']}); "
        f"{len(validated)} validated along the path{': ' + verdicts if verdicts else ''}"
        f"{'; returned ' + chosen if chosen else ''}. "
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--search-minutes", type=float, default=20.0)
    parser.add_argument("--goal", choices=("latency", "size"), default="latency")
    parser.add_argument("--max-drop", type=float, default=1.0)
    parser.add_argument("--search-images", type=int, help="passed to auto (default: its own, by the budget)")
    parser.add_argument("--runs", type=int, default=200, help="interleaved timing rounds")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    parser.add_argument("--cache-dir", type=Path, help="vggedge's cache (a trained sample saves its training)")
    parser.add_argument("--note", help="a line for the table's end: what else ran on the machine, say")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vggedge-auto-bench-"))
    cache = args.cache_dir or work / "cache"
    runs = {"fixed": optimize(["--recipe", ",".join(FIXED), "--out", str(work / "runs")], cache)}
    auto_args = ["--recipe", "auto", "--max-drop", str(args.max_drop), "--goal", args.goal]
    auto_args += ["--search-minutes", str(args.search_minutes), "--out", str(work / "runs")]
    if args.search_images:
        auto_args += ["--search-images", str(args.search_images)]
    runs["auto"] = optimize(auto_args, cache)
    reports = {name: json.loads((work / "runs" / name / "report.json").read_text()) for name in (*FIXED, "auto")}
    models = {name: work / "runs" / name / "model.tflite" for name in reports}
    timings = time_interleaved(models, args.runs)
    search = reports["auto"]["search"]
    measured = [c for c in search["candidates"] if c.get("stage", "search") != "validated"]
    validated = [c for c in search["candidates"] if c.get("stage") == "validated"]
    per_candidate = statistics.median(c["seconds"] for c in measured)
    lines = [
        f"# `--recipe auto` ({args.goal}) against the fixed recipes on the sample",
        "",
        f"Environment: `{environment_name()}`; command: `python benchmarks/auto_search.py --search-minutes "
        f"{args.search_minutes:g} --goal {args.goal}`. Latency: medians of {args.runs} interleaved batch-1 runs "
        "of every model at each thread count in one process (this machine, not a Pi). Top-1 on the sample's 360 "
        f"evaluation images (one image = {100 / reports['int8']['dataset']['eval_samples']:.2f} pt); "
        "Δ with the paired bootstrap 95% interval.",
        "",
        "| recipe | status | size MB | × smaller | top-1 | Δ pts (95% interval) | p50 ms 1 thr | p50 ms 2 thr "
        "| × faster than fast (2 thr) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    fast2 = statistics.median(timings[("fast", 2)])
    for name, report in reports.items():
        result, ratios = report["result"], report["ratios"]
        change = result.get("top1_change") or {}
        interval = change.get("ci95_pts") or [None, None]
        p1, p2 = statistics.median(timings[(name, 1)]), statistics.median(timings[(name, 2)])
        lines.append(
            f"| {name} | {result['status']} | {result['size_bytes'] / 1e6:.3f} | {ratios['size']:.1f} | "
            f"{result['top1']:.2%} | {ratios['top1_delta_pts']:+.2f} ({interval[0]:+.2f} to {interval[1]:+.2f}) | "
            f"{p1:.3f} | {p2:.3f} | {fast2 / p2:.2f} |"
        )
    best = search["best"]
    lines += [
        "",
        f"Search: {len(search['candidates'])} candidates in {search['seconds']:.0f} s ({search['stopped']}), "
        f"{search['seconds'] / len(search['candidates']):.1f} s per candidate in all (thin, refit, convert, time, "
        f"evaluate), median {per_candidate:.1f} s of it converting, timing and evaluating; "
        f"{search['images']['search']} search images, refits on {search['images']['reconstruction']} training images. "
        f"{stretch_sentence(search, validated)}"
        f"Found: blocks keep {', '.join(f'{1 - r:.3g}' for r in best['block_ratios'])}, head {best['head']}, "
        f"{best['quantization']}.",
        f"Wall time and peak memory: fixed recipes {runs['fixed']['seconds']:.0f} s / "
        f"{runs['fixed']['peak_gb']:.2f} GB "
        f"(three recipes, sample training included when the cache was empty); auto {runs['auto']['seconds']:.0f} s / "
        f"{runs['auto']['peak_gb']:.2f} GB.",
    ]
    if args.note:
        lines += ["", args.note]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"auto-search-{environment_name()}-{args.goal}.md").write_text(text)


if __name__ == "__main__":
    main()
