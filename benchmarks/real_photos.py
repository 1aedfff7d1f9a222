"""Real photographs at the mission's size: every shipped recipe and ``auto`` on a full VGG16 trained on ants and bees.

    python benchmarks/real_photos.py [--recipes int8 fast ...] [--auto-minutes 10] [--auto-max-drop 3] [--out ...]
    python benchmarks/real_photos.py --search-half --recipes int8 auto --auto-max-drop 3

The model is the one a user without ImageNet weights gets: ``keras.applications.VGG16(weights=None,
classes=2)`` at 224x224, trained from scratch with Keras 3 on the 245 training photographs of
``../shared/data/hymenoptera`` (PyTorch's transfer-learning set, a subset of ImageNet) and saved as a
``.keras`` file *with its optimizer state*, as ``model.save`` writes it (1.6 GB). It is trained once and
cached outside the repository (``~/.cache/vggedge/benchmarks``). Each recipe then runs in its own
``vggedge optimize`` process on that file and folder (``train/`` for fine-tuning and calibration, the 153
``val/`` photographs for evaluation), so its wall time and peak memory are its own; the table takes top-1
and its 95% interval, agreement with the Keras baseline, size and latency from each run's ``report.json``
(latency ratios are measured side by side inside each run; absolute times are this CPU's only).

The model trained on every photograph of ``train/``, so the only images it never saw are ``val/``'s.
``--search-half`` splits them, class by class in sorted order, alternately: one half becomes ``auto``'s
``--search-data`` (the search ranks on it and its steps check their fine-tunes on it), the other half the
evaluation folder of every row; its table is its own file (``real-photos-search-half-*``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from measure import run_measured  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "hymenoptera"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vggedge" / "benchmarks"
SEED = 0

TRAIN_CODE = """
import json, time, sys
import keras
from keras.applications import vgg16
keras.utils.set_random_seed({seed})
options = dict(image_size=(224, 224), batch_size=16, seed={seed})
train = keras.utils.image_dataset_from_directory({train!r}, shuffle=True, **options)
val = keras.utils.image_dataset_from_directory({val!r}, shuffle=False, **options)
train = train.map(lambda x, y: (vgg16.preprocess_input(x), y))
val = val.map(lambda x, y: (vgg16.preprocess_input(x), y))
model = vgg16.VGG16(weights=None, classes=2, input_shape=(224, 224, 3))
model.compile(keras.optimizers.Adam(1e-5), "sparse_categorical_crossentropy", metrics=["accuracy"])
started = time.perf_counter()
history = model.fit(train, validation_data=val, epochs={epochs}, verbose=2)
model.save({path!r})
print(json.dumps({{"train_s": round(time.perf_counter() - started, 1),
                  "val_accuracy": history.history["val_accuracy"],
                  "loss": history.history["loss"], "keras": keras.__version__}}))
"""


def trained_model(epochs: int) -> Path:
    """The cached ``.keras`` file, trained here first when it is missing (its record beside it)."""
    path = CACHE / f"hymenoptera-vgg16-{epochs}ep.keras"
    record = path.with_suffix(".json")
    if path.exists() and record.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    code = TRAIN_CODE.format(seed=SEED, train=str(DATA / "train"), val=str(DATA / "val"), epochs=epochs, path=str(path))
    environment = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}  # Keras 3, as users
    print(f"training keras.applications.VGG16 from scratch on {DATA / 'train'} ({epochs} epochs)", flush=True)
    run = run_measured([sys.executable, "-c", code], ROOT, env=environment)
    if run.exit_code != 0:
        raise SystemExit(f"training failed: {run.last_error_line(400)}")
    facts = json.loads(run.stdout.strip().splitlines()[-1])
    facts.update(wall_s=run.wall_s, peak_rss_gb=run.peak_rss_gb, file_bytes=path.stat().st_size)
    record.write_text(json.dumps(facts, indent=1))
    print(f"trained: {facts}", flush=True)
    return path


# The trained model's weights in torchvision's VGG16 layout (features.N, classifier.N), as a PyTorch user's fine-tuned
# checkpoint holds them: OIHW kernels, [out, in] dense weights, fc1's inputs in PyTorch's (C, H, W) flatten order.
TORCH_LAYOUT_CODE = """
import json
import keras
import numpy as np
from safetensors.numpy import save_file
model = keras.saving.load_model({model!r}, compile=False)
state, feature, dense = {{}}, 0, 0
for layer in model.layers:
    if isinstance(layer, keras.layers.Conv2D):
        kernel, bias = layer.get_weights()
        state[f"features.{{feature}}.weight"] = kernel.transpose(3, 2, 0, 1)
        state[f"features.{{feature}}.bias"] = bias
        feature += 2  # the conv and its ReLU
    elif isinstance(layer, keras.layers.MaxPooling2D):
        feature += 1
    elif isinstance(layer, keras.layers.Dense):
        kernel, bias = layer.get_weights()
        if dense == 0:  # rows in Keras' (H, W, C) order -> PyTorch's (C, H, W)
            h, w, c = model.get_layer("block5_pool").output.shape[1:]
            kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
        state[f"classifier.{{3 * dense}}.weight"] = kernel.T
        state[f"classifier.{{3 * dense}}.bias"] = bias
        dense += 1
state = {{name: np.ascontiguousarray(value, dtype=np.float32) for name, value in state.items()}}
save_file(state, {path!r}, metadata={{"class_names": json.dumps({names!r})}})
print(len(state), "tensors")
"""


def torch_checkpoint(model: Path) -> Path:
    """The trained Keras model written once as a torchvision-layout ``.safetensors`` (class names in its metadata):
    a trained PyTorch checkpoint for the rows of ``--checkpoint torch``, exact up to float32 (the same weights)."""
    path = model.with_name(model.stem + "-torchvision.safetensors")
    if path.exists():
        return path
    names = sorted(p.name for p in (DATA / "train").iterdir() if p.is_dir())
    code = TORCH_LAYOUT_CODE.format(model=str(model), path=str(path) + ".partial", names=names)
    environment = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    run = run_measured([sys.executable, "-c", code], ROOT, env=environment)
    if run.exit_code != 0:
        raise SystemExit(f"writing the torchvision-layout checkpoint failed: {run.last_error_line(400)}")
    Path(str(path) + ".partial").rename(path)
    return path


def row_name(recipe: str, auto_max_drop: float | None) -> str:
    """The table's name of a run: the recipe, with auto's budget when it is not the default."""
    return f"{recipe} --max-drop {auto_max_drop:g}" if recipe == "auto" and auto_max_drop is not None else recipe


def search_half() -> tuple[Path, Path]:
    """(a data folder: ``train/`` and half of ``val/``, the other half of ``val/``), copied once into the cache: the
    photos of each class in sorted order, the even-numbered ones for evaluation, the odd-numbered for the search."""
    import shutil

    root = CACHE / "hymenoptera-search-half"
    data, search = root / "data", root / "search"
    if not (root / "complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(DATA / "train", data / "train")
        for folder in sorted(p for p in (DATA / "val").iterdir() if p.is_dir()):
            photos = sorted(p for p in folder.iterdir() if p.is_file())
            for index, photo in enumerate(photos):
                target = (data / "val" if index % 2 == 0 else search) / folder.name / photo.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(photo, target)
        (root / "complete").write_text("")
    return data, search


def run_recipe(recipe: str, model: Path, work: Path, args: argparse.Namespace, search: Path | None = None) -> dict:
    """One ``vggedge optimize`` in a child process (``search``: auto's --search-data); its row from its report."""
    data = search_half()[0] if search is not None else DATA
    command = [sys.executable, "-m", "vggedge", "optimize", "--model", str(model), "--data", str(data)]
    command += ["--preprocess", "caffe", "--recipe", recipe, "--out", str(work), "-q"]
    auto_minutes, remedy_minutes, auto_max_drop = args.auto_minutes, args.remedy_minutes, args.auto_max_drop
    if recipe == "auto":
        command += ["--search-minutes", str(auto_minutes)]
        command += ["--search-data", str(search)] if search is not None else []
        command += ["--max-drop", str(auto_max_drop)] if auto_max_drop is not None else []
    else:
        command += ["--remedy-minutes", str(remedy_minutes)]
    name = row_name(recipe, auto_max_drop)
    print(f"{name}: {' '.join(command[1:])}", flush=True)
    run = run_measured(command, ROOT)
    row = {"recipe": name, "wall_s": run.wall_s, "peak_rss_gb": run.peak_rss_gb, "exit": run.exit_code}
    report_path = work / recipe / "report.json"
    if not report_path.exists():
        row["status"] = "no report: " + run.last_error_line(160)
        return row
    report = json.loads(report_path.read_text())
    result, change = report["result"], report["result"].get("top1_change") or {}
    row.update(
        status=result["status"],
        baseline_top1=report["baseline"]["top1"],
        top1=result.get("top1"),
        delta_pts=change.get("delta_pts"),
        ci95_pts=change.get("ci95_pts"),
        agreement=result.get("agreement"),
        size_ratio=(report.get("ratios") or {}).get("size"),
        speedup=(report.get("ratios") or {}).get("speedup"),
        latency_ms=(result.get("latency_ms") or {}).get("p50"),
        notes=report.get("notes", []),
        search=report.get("search"),
        steps=[s.get("type") for s in report["recipe"].get("steps", [])],
        remedies=report.get("remedies"),
        source_top1=result.get("source_top1"),
    )
    print(f"{name}: {row['status']} {row['delta_pts']} pts, {row['wall_s']} s, {row['peak_rss_gb']} GB", flush=True)
    return row


def side_by_side(work: Path, names: list[str], threads: int, seconds: float) -> dict | None:
    """The named runs' ``model.tflite`` files timed in one process, interleaved round by round (a burst of load slows
    them alike), at ``threads``: the figure a comparison of two recipes needs, which each run's own ratio against its
    own Keras timing is not. None when a file is missing."""
    import numpy as np
    from PIL import Image

    from vggedge.core.metrics import time_interleaved
    from vggedge.device.models import load

    paths = [work / folder_of(name) / "model.tflite" for name in names]
    if not all(path.exists() for path in paths):
        return None
    photo = sorted((DATA / "val").rglob("*.jpg"))[0]
    pixels = np.asarray(Image.open(photo).convert("RGB").resize((224, 224)), dtype=np.float32)
    models = [load(path, threads=threads) for path in paths]
    latencies = time_interleaved([lambda m=m: m.predict_one(pixels) for m in models], seconds, min_rounds=20)
    return {
        "threads": threads,
        "rounds": latencies[0].runs,
        "p50_ms": {name: round(latency.p50, 3) for name, latency in zip(names, latencies, strict=True)},
    }


def folder_of(name: str) -> str:
    """The run's report folder: its recipe's name (auto's budget is not part of it)."""
    return name.split(" ")[0]


def commit() -> str:
    """The code the row was measured with: the short commit, marked when the tree had changes."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "vggedge", "recipes"], capture_output=True, text=True, cwd=ROOT
    )
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def markdown(
    rows: list[dict],
    facts: dict,
    environment: str,
    command: str,
    timing: dict | None = None,
    evaluated: str = "",
    source: str = "",
) -> str:
    title = "Real photographs at 224x224: every recipe on a weak full-size VGG16"
    title += " from a PyTorch-layout checkpoint" if source else ""
    title += ", auto's search data apart" if evaluated else ""  # only a --search-half run names its evaluation set
    evaluated = evaluated or "the 153 `val/` photographs"
    lines = [
        f"# {title}",
        "",
        f"`{command}` on {environment}. Model: `keras.applications.VGG16(weights=None, classes=2)` trained from "
        f"scratch with Keras {facts.get('keras')} on 245 photographs (ants and bees), saved with its optimizer "
        f"({facts.get('file_bytes', 0) / 1e9:.2f} GB){source}; evaluation on {evaluated}. "
        "Top-1 change with its 95% bootstrap interval (paired, points); agreement with the Keras baseline's "
        "top-1; size and speed against the float32 Keras model, measured side by side within each run; wall "
        "time and peak memory of each `vggedge optimize` process.",
        "",
        "| recipe | status | top-1 | change (95% CI) | agreement | smaller | faster | TFLite p50 ms | wall s "
        "| peak GB | commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ci = row.get("ci95_pts") or ["", ""]
        change = "" if row.get("delta_pts") is None else f"{row['delta_pts']:+.2f} ({ci[0]} to {ci[1]})"
        lines.append(
            f"| {row['recipe']} | {row['status'][:60]} | {percent(row.get('top1'))} | {change} | "
            f"{percent(row.get('agreement'))} | {row.get('size_ratio') or ''}x | {row.get('speedup') or ''}x | "
            f"{row.get('latency_ms') or ''} | {row['wall_s']} | {row['peak_rss_gb']} | {row.get('commit', '')} |"
        )
    for row in rows:
        if row["recipe"].startswith("auto") and row.get("search"):
            lines += search_summary(row)
    if timing:
        (first, first_ms), (second, second_ms) = list(timing["p50_ms"].items())[:2]
        lines += [
            "",
            f"**Side by side** (the last run's `{first}` and `{second}` files in one process, interleaved, "
            f"{timing['rounds']} rounds at {timing['threads']} threads): `{first}` p50 {first_ms} ms, `{second}` "
            f"{second_ms} ms: `{second}` is {first_ms / second_ms:.2f}x as fast.",
        ]
    baseline = next((r["baseline_top1"] for r in rows if r.get("baseline_top1") is not None), None)
    lines += ["", f"Baseline (float32 Keras) top-1: {percent(baseline)}.", "", "## Notes per recipe", ""]
    for row in rows:
        tried = [f"{t['remedy']} {t['status']}" for t in row.get("remedies") or []]
        remedies = f" Remedies: {', '.join(tried)}." if tried else ""
        lines.append(f"- **{row['recipe']}**:{remedies} " + " / ".join(row.get("notes") or ["(none)"]))
    return "\n".join(lines) + "\n"


def search_summary(row: dict | None) -> list[str]:
    """The auto row's search: how many candidates it visited in its time, how each was measured, and the median
    seconds of each stage of a candidate (from the trace's per-candidate ``stages``)."""
    if row is None:
        return []
    search = row["search"]
    candidates = search.get("candidates", [])
    screened = [c for c in candidates if c.get("screened")]
    validated = [c for c in candidates if c.get("stage") == "validated"]
    converted = [c for c in candidates if not c.get("screened") and c.get("stage") != "validated"]
    stages: dict[str, list[float]] = {}
    for c in candidates:
        for name, seconds in (c.get("stages") or {}).items():
            stages.setdefault(name, []).append(seconds)
    medians = ", ".join(f"{name} {statistics.median(values):.1f} s (x{len(values)})" for name, values in stages.items())
    screening = search.get("screening") or {}
    return [
        "",
        f"**{row['recipe']}'s search** ({row.get('commit', '')}): {len(candidates)} candidates in "
        f"{search.get('seconds')} s "
        f"(stopped: {search.get('stopped')}): {len(screened)} screened in float, {len(converted)} converted to "
        f"{search.get('best', {}).get('quantization', 'int8')} and timed, {len(validated)} validated. Screening "
        f"{'on' if screening.get('on') else 'off'} (converting the start took {screening.get('convert_s')} s, a float "
        f"pass of the search split {screening.get('float_scoring_s')} s). Median seconds per stage: {medians}.",
    ]


def count_photos(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def main() -> None:
    from fullsize import environment_name

    from vggedge.recipe.schema import shipped_recipes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="*", default=[*shipped_recipes(), "auto"])
    parser.add_argument("--epochs", type=int, default=8, help="training epochs of the cached model")
    parser.add_argument("--auto-minutes", type=float, default=10.0)
    parser.add_argument("--auto-max-drop", type=float, help="auto's budget in points (default: optimize's own)")
    parser.add_argument("--remedy-minutes", type=float, default=15.0, help="each recipe's remedies' time cap")
    parser.add_argument("--work", type=Path, default=CACHE / "real-photos-runs")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument(
        "--side-by-side", nargs=2, metavar="ROW", help="time two rows' model.tflite interleaved, e.g. int8 auto"
    )
    parser.add_argument("--threads", type=int, default=2, help="threads of the side-by-side timing")
    parser.add_argument(
        "--checkpoint",
        choices=["keras", "torch"],
        default="keras",
        help="the file each run reads: the .keras, or its weights as a torchvision-layout .safetensors",
    )
    parser.add_argument(
        "--search-half", action="store_true", help="half of val/ as auto's --search-data, the other half evaluated"
    )
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"no photographs at {DATA}: this benchmark needs ../shared/data/hymenoptera")
    model = trained_model(args.epochs)
    if args.train_only:
        return
    facts = json.loads(model.with_suffix(".json").read_text())
    if args.checkpoint == "torch":
        model = torch_checkpoint(model)
    environment = environment_name()
    search = search_half()[1] if args.search_half else None
    variant = ("torch-" if args.checkpoint == "torch" else "") + ("search-half-" if search is not None else "")
    work = args.work / variant.rstrip("-") if variant else args.work
    stem = args.out / f"real-photos-{variant}{environment}"
    # Rows of recipes not run this time stay from the last run (each row names the commit that made it)
    old = json.loads(stem.with_suffix(".json").read_text()) if stem.with_suffix(".json").exists() else {}
    kept = old.get("rows", [])
    new = {
        row_name(r, args.auto_max_drop): {**run_recipe(r, model, work, args, search), "commit": commit()}
        for r in args.recipes
    }
    order = [row["recipe"] for row in kept] + [r for r in new if r not in {row["recipe"] for row in kept}]
    rows = [new.get(name) or next(row for row in kept if row["recipe"] == name) for name in order]
    timing = old.get("side_by_side")
    if args.side_by_side:
        timing = side_by_side(work, args.side_by_side, args.threads, seconds=30.0)
    (stem.with_suffix(".json")).write_text(json.dumps({"model": facts, "rows": rows, "side_by_side": timing}, indent=1))
    command = f"python benchmarks/real_photos.py` (rows by their commit; the last run: `{shlex.join(sys.argv[1:])}"
    evaluated, source = "", ""
    if args.checkpoint == "torch":
        source = (
            f"; every run reads its weights from `{model.name}`, written in torchvision's VGG16 layout (OIHW kernels, "
            "fc1 in PyTorch's flatten order, class names in its metadata) and translated back by vggedge"
        )
    if search is not None:
        evaluated = (
            f"the {count_photos(search_half()[0] / 'val')} even-numbered `val/` photographs of each class; "
            f"`auto`'s `--search-data` is the other {count_photos(search)}"
        )
    text = markdown(rows, facts, environment, command.strip(), timing, evaluated, source)
    stem.with_suffix(".md").write_text(text)
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
