"""`--recipe auto` on every model form users build (tests/forms.py): within its budget on each, measured.

Trains each form (1/4 of VGG16's widths, the sample's digits; the two sigmoid forms on them as two classes),
saves it as a user would, then runs `vggedge optimize --recipe auto --max-drop 1` on the file with its data
and the default final fine-tunes, each in its own process (wall time, peak memory). The table gives the
baseline, the found shape, top-1 change with its interval, status, size and speed ratios from each report.

    python benchmarks/auto_forms.py [--search-minutes 3] [--forms batch_norm,...] [--search-from held-out|carved]

``--search-from held-out`` (the default) plays a user with a validation folder: every sixth image (by a checksum
of its path) goes to a folder the form never trains on, given as ``--search-data``; the form trains on the rest's
training split, and the evaluation images are the rest's. ``carved`` ranks on the default split carved from the
training images, which the form trained on.

Writes ``reports/benchmarks/auto-forms-<environment>[-carved].md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from fullsize import environment_name  # noqa: E402
from measure import run_measured  # noqa: E402

from forms import FORMS, binary_digits  # noqa: E402

# The batch_norm form's moving averages need more than the suite's 6 epochs to settle (93% in the suite).
EPOCHS = {"batch_norm": 12}


def split_folder(source: Path, rest: Path, held_out: Path, every: int = 6) -> None:
    """Symlink each image of the class-per-folder ``source`` into ``held_out`` (one in ``every``, by a checksum of
    its relative path: deterministic) or ``rest``."""
    for image in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = image.relative_to(source)
        chosen = int(hashlib.sha256(str(relative).encode()).hexdigest(), 16) % every == 0
        target = (held_out if chosen else rest) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(image.resolve())


def validation_cell(search: dict) -> str:
    """How many validations ran, which shape the search returned, and the returned validation's drop and bound."""
    validation = search.get("validation") or {}
    passed = [c for c in search["candidates"] if c.get("stage") == "validated" and c.get("passed")]
    returned = validation.get("chosen", "?").split(" (")[0]
    figures = f" ({0.0 - passed[-1]['drop_pts']:+.2f}, {passed[-1]['drop_bound_pts']:.2f})" if passed else ""
    return f"{validation.get('validations', 0)}: {returned}{figures}"


def main() -> None:
    from vggedge.core.cache import default_cache_dir
    from vggedge.models.sample import sample_images_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--search-minutes", type=float, default=3.0)
    parser.add_argument("--max-drop", type=float, default=1.0)
    parser.add_argument("--forms", default=",".join(FORMS))
    parser.add_argument("--search-from", choices=["held-out", "carved"], default="held-out")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vggedge-auto-forms-"))
    digits = sample_images_dir(default_cache_dir())
    binary = binary_digits(digits, work / "binary-digits")
    folders = {False: (digits, None), True: (binary, None)}
    if args.search_from == "held-out":
        for is_binary, (source, _) in list(folders.items()):
            rest, held_out = work / f"{source.name}-rest", work / f"{source.name}-search"
            split_folder(source, rest, held_out)
            folders[is_binary] = (rest, held_out)
    rows = []
    for name in args.forms.split(","):
        _, is_binary, preprocess = FORMS[name]
        (data, search_data), model = folders[is_binary], work / f"{name}.keras"
        epochs = EPOCHS.get(name, 6)
        train = run_measured(
            [sys.executable, str(ROOT / "tests" / "forms.py"), name, str(data), str(model), "--epochs", str(epochs)]
        )
        if train.exit_code != 0:
            raise SystemExit(f"training {name} failed: {train.last_error_line()}")
        command = [sys.executable, "-m", "vggedge", "optimize", "-q", "--recipe", "auto", "--model", str(model)]
        command += ["--data", str(data), "--out", str(work / name), "--max-drop", str(args.max_drop)]
        command += ["--search-minutes", str(args.search_minutes), "--eval-samples", "300"]
        command += ["--preprocess", preprocess] if preprocess else []
        command += ["--search-data", str(search_data)] if search_data else []
        run = run_measured(command)
        if run.exit_code not in (0, 1):
            raise SystemExit(f"auto on {name} failed: {run.last_error_line()}")
        report = json.loads((work / name / "auto" / "report.json").read_text())
        rows.append((name, epochs, train.wall_s, run, report))
        print(name, report["result"]["status"], report["ratios"], flush=True)
    lines = [
        "# `--recipe auto` on every model form",
        "",
        f"Environment: `{environment_name()}`; command: `python benchmarks/auto_forms.py --search-minutes "
        f"{args.search_minutes:g} --search-from {args.search_from}`. Each form (tests/forms.py, 1/4 of VGG16's "
        "widths, 32x32 digits) trained, saved "
        f"as `.keras`, then `optimize --recipe auto --max-drop {args.max_drop:g}` on it with the default final "
        "fine-tunes; top-1 on 300 evaluation images (one image = 0.33 point), Δ with the paired bootstrap 95% "
        "interval; latency ratio from each report's own timing (Keras baseline / TFLite result, batch 1). "
        + (
            "Candidates ranked on a held-out folder (every sixth image, `--search-data`) the form never trained on."
            if args.search_from == "held-out"
            else "Candidates ranked on the default search split carved from the training images the form trained on."
        ),
        "",
        "| form | epochs | baseline top-1 | found: blocks keep · head · format | status | top-1 | Δ pts (95% interval) "
        "| × smaller | × faster than Keras | validations: returned (search-split Δ, bound) | candidates | search s "
        "| stopped | wall s | peak GB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, epochs, _, run, report in rows:
        search, result, ratios = report["search"], report["result"], report["ratios"]
        best = search["best"]
        keep = " ".join(f"{1 - r:.3g}" for r in best["block_ratios"])
        interval = (result.get("top1_change") or {}).get("ci95_pts") or [0.0, 0.0]
        lines.append(
            f"| {name} | {epochs} | {report['baseline']['top1']:.2%} | {keep} · {best['head']} · "
            f"{best['quantization']} | {result['status']} | {result['top1']:.2%} | {ratios['top1_delta_pts']:+.2f} "
            f"({interval[0]:+.2f} to {interval[1]:+.2f}) | {ratios['size']:.1f} | {ratios['speedup']:.1f} | "
            f"{validation_cell(search)} | {len(search['candidates'])} | {search['seconds']:.0f} | {search['stopped']} "
            f"| {run.wall_s:.0f} | {run.peak_rss_gb:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-carved" if args.search_from == "carved" else ""
    (args.out / f"auto-forms-{environment_name()}{suffix}.md").write_text(text)


if __name__ == "__main__":
    main()
