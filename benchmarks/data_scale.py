"""Data at scale: does `optimize`'s memory stay flat as the training folder grows, and how fast is decoding?

    python benchmarks/data_scale.py [--sizes 2000 20000] [--out reports/benchmarks]

Generates folders of 224x224 JPEG images (10 classes), builds a narrow VGG16-topology model at 224x224
input, and runs `vggedge optimize --recipe gap-int8` on each folder in its own process: peak RSS
(ru_maxrss of that process) and wall time. Then decode throughput, side by side in one
run, on the same 224x224 files and on 500x375 photos (ImageNet's typical size, resized like any real
photo): the single-threaded reader (`data.decode_image` in a loop, what `optimize` did for every image
before streaming) against the streamed `tf.data` pipeline (`training.image_dataset`). Writes
`data-scale-<environment>.md` with the environment of the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # measure.py, fullsize.py

from measure import run_measured  # noqa: E402

CLASSES = 10
SIZE = 224


def make_folder(root: Path, count: int) -> Path:
    """``count`` JPEGs (quality 90) of class-tinted noise, ~100-150 KB each like camera crops; made once."""
    from PIL import Image

    marker = root / ".complete"
    if marker.exists():
        return root
    rng = np.random.default_rng(count)
    for index in range(count):
        label = index % CLASSES
        target = root / f"class{label}" / f"{index:06d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        noise = rng.integers(0, 160, (SIZE, SIZE, 3), dtype=np.uint8)
        noise[..., label % 3] += np.uint8(80)
        Image.fromarray(noise).save(target, quality=90)
    marker.touch()
    return root


def make_model(path: Path) -> Path:
    """A 1/8-width VGG16 topology at 224x224 (same blocks and head kind as the real one), untrained."""
    if not path.exists():
        spec = f"VGGSpec(input_size={SIZE}, classes={CLASSES}, width=1 / 8, dense_units=64, preprocess='unit')"
        code = f"from vggedge.models.vgg import VGGSpec, build_vgg16\nbuild_vgg16({spec}).save({str(path)!r})"
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)
    return path


def run_optimize(model: Path, data: Path, out: Path) -> dict:
    """One run in its own process. The model is untrained (near-uniform outputs), so accuracy and agreement
    mean nothing here and are not gated (--max-drop 100, --min-agreement 0): this measures memory and time."""
    command = [
        sys.executable,
        "-m",
        "vggedge",
        "optimize",
        "--recipe",
        "gap-int8",
        "--model",
        str(model),
        "--data",
        str(data),
        "--out",
        str(out),
        "-q",
        "--runs",
        "3",
        "--max-drop",
        "100",
        "--min-agreement",
        "0",
    ]
    run = run_measured(command, ROOT)
    row = {"wall_s": run.wall_s, "peak_rss_gb": run.peak_rss_gb, "exit": run.exit_code}
    report = out / "gap-int8" / "report.json"
    if report.exists():
        written = json.loads(report.read_text())
        row["train_images"] = written["dataset"]["train_samples"]
        row["status"] = written["result"]["status"]
    else:
        row["status"] = "failed: " + run.last_error_line(160)
    return row


def make_photos(root: Path, count: int, width: int = 500, height: int = 375) -> Path:
    """``count`` JPEGs at ImageNet's typical photo size (500x375), which every reader must resize to 224."""
    from PIL import Image

    marker = root / ".complete"
    if marker.exists():
        return root
    rng = np.random.default_rng(width)
    for index in range(count):
        target = root / "photos" / f"{index:06d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(target, quality=90)
    marker.touch()
    return root


def decode_throughput(folder: Path, count: int, repeats: int = 5) -> dict:
    """Images per second over the same ``count`` files: one thread with Pillow against the streamed pipeline,
    interleaved ``repeats`` times (this machine is noisy), medians. Both are warm: files in the page cache,
    and the pipeline's first batch (building it, starting its threads) left out, as latency's warm-up is."""
    code = f"""
import json, statistics, time
from pathlib import Path
import numpy as np
from vggedge.core.data import FileSplit, decode_image
from vggedge.backend.training import image_dataset
paths = sorted(Path({str(folder)!r}).rglob("*.jpg"))[:{count}]
for path in paths:
    path.read_bytes()
split = FileSplit(paths, np.zeros(len(paths), np.int64), [p.name for p in paths], {SIZE})
def single():
    started = time.perf_counter()
    for path in paths:
        decode_image(path, {SIZE})
    return len(paths) / (time.perf_counter() - started)
def streamed():
    batches = iter(image_dataset(split, None, 32, shuffle=False))
    seen = -len(next(batches))
    started = time.perf_counter()
    seen += len(paths)
    for _ in batches:
        pass
    return seen / (time.perf_counter() - started)
pairs = [(single(), streamed()) for _ in range({repeats})]
print(json.dumps({{
    "images": len(paths),
    "single_thread_img_s": round(statistics.median(a for a, _ in pairs), 1),
    "streamed_img_s": round(statistics.median(b for _, b in pairs), 1),
    "ratio": round(statistics.median(b / a for a, b in pairs), 2),
}}))
"""
    done = subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "vggedge-data-scale")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    parser.add_argument("--decode-images", type=int, default=4000)
    args = parser.parse_args()

    model = make_model(args.work / "narrow-vgg16-224.h5")
    rows = []
    for size in args.sizes:
        print(f"generating {size} JPEGs ...", flush=True)
        folder = make_folder(args.work / f"images-{size}", size)
        print(f"optimize --recipe gap-int8 on {size} images ...", flush=True)
        rows.append({"images": size, **run_optimize(model, folder, args.work / f"out-{size}")})
        print(f"  {rows[-1]}", flush=True)
    throughput = {
        f"{SIZE}x{SIZE} (no resize)": decode_throughput(args.work / f"images-{max(args.sizes)}", args.decode_images),
        "500x375 (resized to 224)": decode_throughput(make_photos(args.work / "photos-500x375", 1000), 1000),
    }
    print(f"  decode: {throughput}", flush=True)
    write_table(rows, throughput, args)


def write_table(rows: list[dict], throughput: dict, args: argparse.Namespace) -> None:
    from fullsize import environment_name

    from vggedge.device.environment import describe_environment

    env = dataclasses.asdict(describe_environment(None, None))
    growth = rows[-1]["peak_rss_gb"] - rows[0]["peak_rss_gb"]
    lines = [
        "# Data at scale: `optimize --recipe gap-int8` as the training folder grows",
        "",
        f"Model: 1/8-width VGG16 topology at {SIZE}x{SIZE}, {CLASSES} classes. Data: generated JPEGs (quality 90).",
        f"Environment: {', '.join(f'{k}={v}' for k, v in env.items() if k not in ('runtime', 'runtime_version'))}.",
        "",
        "| images | training images | status | peak RSS GB | wall s |",
        "|---|---|---|---|---|",
        *[
            f"| {r['images']} | {r.get('train_images', '—')} | {r['status']} | {r['peak_rss_gb']} | {r['wall_s']} |"
            for r in rows
        ],
        "",
        f"Peak RSS grew {growth:+.2f} GB from {rows[0]['images']} to {rows[-1]['images']} images "
        "(goal: within 0.5 GB).",
        "",
        "Decoding (goal: the streamed pipeline at 1.5x the single-threaded reader on 2 cores). Medians of 5",
        "interleaved passes over the same files, warm (page cache; the pipeline's first batch left out):",
        "",
        "| JPEGs | images | single-threaded img/s | streamed img/s | ratio |",
        "|---|---|---|---|---|",
        *[
            f"| {kind} | {t['images']} | {t['single_thread_img_s']} | {t['streamed_img_s']} | {t['ratio']:.2f}x |"
            for kind, t in throughput.items()
        ],
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"data-scale-{environment_name()}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
