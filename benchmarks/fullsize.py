"""Full-size VGG16 benchmark: every shipped recipe, measured side by side in one run.

    python benchmarks/fullsize.py [--recipes int8 fast ...] [--runs 15] [--out reports/benchmarks]

For the 138M-parameter VGG16 (ImageNet weights when Keras has them cached, random weights
otherwise: said in the output), each recipe runs in its own `vggedge optimize` process, so its
wall time and peak memory (ru_maxrss) are its own. Then, in this process, every resulting
TFLite model and two references (TensorFlow's float32 Keras model and the float32 TFLite model)
are timed at batch 1 with 1 and 2 threads, interleaved run by run so that machine noise hits all
rows alike; medians (p50) and p90 are quoted. The table is written as Markdown and CSV whose
file names name the environment.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # peers.py, measure.py, also when loaded by path (tests)

import cpuid_mask  # noqa: E402
from measure import run_measured  # noqa: E402

THREADS = (1, 2)


def recipe_name(recipe: str) -> str:
    """The row's name and the report folder's: a shipped recipe's name, or a recipe file's own ``name``
    (``auto``'s ``recipe.toml`` is ``auto``)."""
    from vggedge.recipe.schema import load_recipe

    return load_recipe(recipe).name


def run_optimize(recipe: str, work: Path, weights: str | None) -> list[dict]:
    """One recipe (a shipped name or a ``.toml`` file, such as the shape ``--recipe auto`` found) in a child
    process: wall time and peak resident memory of that process alone."""
    command = [
        sys.executable,
        "-m",
        "vggedge",
        "optimize",
        "--recipe",
        recipe,
        "--model",
        "vgg16",
        "--out",
        str(work),
        "--runs",
        "1",
        "--warmup",
        "0",
        "-q",
        "--formats",
        "all",
    ]
    if weights:
        command += ["--weights", weights]
    run = run_measured(command)
    name = recipe_name(recipe)
    row = {"recipe": name, "wall_s": run.wall_s, "peak_rss_gb": run.peak_rss_gb, "exit": run.exit_code}
    report_path = work / name / "report.json"
    if run.exit_code != 0 or not report_path.exists():
        row["status"] = "failed: " + run.last_error_line(120)
        return [row]
    report = json.loads(report_path.read_text())
    result = report["result"]
    if result["status"] != "ok":
        row["status"] = f"{result['status']}: {result.get('error', '')[:120]}"
        return [row]
    row.update(
        status=result["status"],
        size_mb=round(result["size_bytes"] / 1e6, 2),
        gzip_mb=round(result["gzip_bytes"] / 1e6, 2),
        gflops=round((result.get("flops") or 0) / 1e9, 2),
        convert_s=(result.get("timing") or {}).get("convert_s"),
        model=str(work / name / "model.tflite"),
        weights=report["model"]["weights"],
    )
    return [row, *artifact_rows(row, report, work / name)]


def artifact_rows(row: dict, report: dict, folder: Path) -> list[dict]:
    """A row per other format the run wrote (``--formats all``), verified there like the TFLite file."""
    rows = []
    for artifact in report.get("artifacts", [])[1:]:
        other = {"recipe": f"{row['recipe']}-{artifact['format']}", "wall_s": None, "peak_rss_gb": None, "exit": 0}
        if artifact["status"] != "ok":
            other["status"] = f"{artifact['status']}: {(artifact.get('error') or '')[:120]}"
        else:
            other.update(status="ok", size_mb=round(artifact["size_bytes"] / 1e6, 2), gflops=row["gflops"],
                         model=str(folder / artifact["file"]), weights=row["weights"],
                         runtime=artifact["runtime"])  # fmt: skip
        rows.append(other)
    return rows


def keras_reference(weights: str | None, threads: int, runs: int) -> dict:
    """TensorFlow's float32 Keras VGG16 at batch 1 in a child process limited to ``threads`` threads."""
    code = f"""
import dataclasses, json, os, sys
import numpy as np
from vggedge.backend.keras_env import tf
tf.config.threading.set_intra_op_parallelism_threads({threads})
tf.config.threading.set_inter_op_parallelism_threads(1)
from vggedge.models.loading import load_imagenet_vgg16
from vggedge.run.baseline import measure_keras_latency
from vggedge.models.flops import flops
baseline = load_imagenet_vgg16({weights!r})
image = np.random.default_rng(0).integers(0, 256, size=(224, 224, 3)).astype(np.uint8)
latency = measure_keras_latency(baseline.model, image, runs={runs}, warmup=2)
print(json.dumps({{"latency": dataclasses.asdict(latency), "params": baseline.model.count_params(),
                   "flops": flops(baseline.model), "weights": baseline.weights}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def float32_tflite(weights: str | None, work: Path) -> tuple[Path, dict]:
    """The float32 TFLite reference, converted in a child process (its time and memory recorded)."""
    code = f"""
import time
from pathlib import Path
from vggedge.export.convert import convert
from vggedge.models.loading import load_imagenet_vgg16
model = load_imagenet_vgg16({weights!r}).model
started = time.perf_counter()
Path({str(work / "fp32.tflite")!r}).write_bytes(convert(model, "float32"))
print(round(time.perf_counter() - started, 1))
"""
    run = run_measured([sys.executable, "-c", code], ROOT)
    if run.exit_code != 0:
        raise RuntimeError(f"the float32 TFLite reference did not convert: {run.last_error_line()}")
    convert_s = float(run.stdout.strip().splitlines()[-1])
    path = work / "fp32.tflite"
    from vggedge.device.benchmark import gzip_size

    return path, {
        "recipe": "float32 TFLite (reference)",
        "status": "ok",
        "wall_s": run.wall_s,
        "peak_rss_gb": run.peak_rss_gb,
        "size_mb": round(path.stat().st_size / 1e6, 2),
        "gzip_mb": round(gzip_size(path) / 1e6, 2),
        "convert_s": convert_s,
    }


def time_interleaved(
    models: dict[str, Path], runs: int, work: Path | None = None
) -> dict[tuple[str, int], list[float]]:
    """Batch-1 latency of every model (TFLite, or a peer's) at every thread count, one invocation of each
    per round, so machine noise hits every row alike."""
    from peers import Runner

    from vggedge.device.models import load

    rng = np.random.default_rng(0)
    interpreters = {}
    for name, path in models.items():
        for threads in THREADS:
            # vggedge's own files (any format) through its loader; a peer's (its IR and ONNX files) by its runner
            ours = work is None or path.suffix == ".tflite" or path.parent != work  # <work>/<recipe>/model.*
            model = load(path, threads=threads) if ours else Runner(path, threads)
            size = model.input_size if ours else 224
            model.set_input(rng.integers(0, 256, size=(size, size, 3)).astype(np.uint8))
            model.invoke_once()
            model.invoke_once()  # warm-up
            interpreters[(name, threads)] = model
    timings: dict[tuple[str, int], list[float]] = {key: [] for key in interpreters}
    for _ in range(runs):
        for key, model in interpreters.items():
            started = time.perf_counter()
            model.invoke_once()
            timings[key].append((time.perf_counter() - started) * 1000)
    return timings


# The feature that decides int8 speed most, best first: "AMD EPYC" named both a Zen 4 with AVX-512 VNNI
# (int8 4x faster than float32) and an AVX2-only CPU (1.1x), whose tables must not overwrite each other.
INT8_TIERS = ("amx_int8", "avx512_vnni", "avx_vnni", "avx2", "i8mm", "asimddp", "asimd")


def environment_name() -> str:
    from vggedge.device.environment import cpu_features, cpu_name

    cpu = "".join(c if c.isalnum() else "-" for c in cpu_name()).strip("-").lower()
    tier = next((f.replace("_", "-") for f in INT8_TIERS if f in cpu_features()), "")
    return f"{platform.machine()}-{cpu}-{os.cpu_count()}cores{'-' + tier if tier else ''}"[:80]


def main() -> None:
    from vggedge.models.loading import VGG16_WEIGHTS_FILE, keras_cache_dir
    from vggedge.recipe.schema import shipped_recipes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="*", default=list(shipped_recipes()))
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    parser.add_argument("--work", type=Path, default=None, help="where models go (default: a temporary folder)")
    parser.add_argument("--no-peers", action="store_true", help="leave out OpenVINO and ONNX Runtime")
    parser.add_argument("--calibration", type=int, default=8, help="calibration images for the peers' int8")
    parser.add_argument("--no-onnx", action="store_true", help="leave out ONNX Runtime")
    parser.add_argument(
        "--kernels",
        choices=("native", "avx2"),
        default="native",
        help="avx2: CPUID masked so XNNPACK and oneDNN run the kernels an AVX2-only CPU gets (cpuid_mask.py)",
    )
    args = parser.parse_args()
    if args.kernels == "avx2":
        cpuid_mask.reexec_with_avx2_kernels()

    cached = (keras_cache_dir() / VGG16_WEIGHTS_FILE).exists()
    weights = None if cached else "random"
    print(
        "VGG16 weights: "
        + ("ImageNet (Keras cache)" if cached else "random (ImageNet weights not cached): sizes and latency only"),
        flush=True,
    )
    work = args.work or Path(tempfile.mkdtemp(prefix="vggedge-bench-"))
    work.mkdir(parents=True, exist_ok=True)

    rows = []
    for recipe in args.recipes:
        print(f"optimize --recipe {recipe} ...", flush=True)
        written = run_optimize(recipe, work, weights)
        rows += written
        print(f"  {written}", flush=True)
    fp32_path, fp32_row = float32_tflite(weights, work)
    print(f"  {fp32_row}", flush=True)
    peer_rows = [] if args.no_peers else measure_peers(weights, work, args.calibration, not args.no_onnx)

    keras_rows = {threads: keras_reference(weights, threads, args.runs) for threads in THREADS}
    models = {"float32 TFLite (reference)": fp32_path} | {
        row["recipe"]: Path(row["model"]) for row in rows + peer_rows if "model" in row
    }
    timings = time_interleaved(models, args.runs, work)

    keras_row = {
        "recipe": "TensorFlow Keras float32 (reference)",
        "status": "ok",
        "size_mb": round(keras_rows[2]["params"] * 4 / 1e6, 2),
        "gflops": round(keras_rows[2]["flops"] / 1e9, 2),
    }
    for threads in THREADS:
        keras_row[f"p50_ms_{threads}t"] = keras_rows[threads]["latency"]["p50"]
        keras_row[f"p90_ms_{threads}t"] = keras_rows[threads]["latency"]["p90"]
    fp32_row["gflops"] = keras_row["gflops"]
    for row in peer_rows:
        row["gflops"] = keras_row["gflops"]  # the unpruned model's graph
    table = [keras_row, fp32_row, *rows, *peer_rows]
    for row in table[1:]:
        for threads in THREADS:
            values = timings.get((row["recipe"], threads))
            if values:
                row[f"p50_ms_{threads}t"] = round(float(np.percentile(values, 50)), 1)
                row[f"p90_ms_{threads}t"] = round(float(np.percentile(values, 90)), 1)
    for row in table:
        p50 = row.get("p50_ms_2t")
        row["x_vs_keras_2t"] = round(keras_row["p50_ms_2t"] / p50, 2) if p50 else None
        row["x_vs_fp32_tflite_2t"] = (
            round(fp32_row["p50_ms_2t"] / p50, 2) if p50 and fp32_row.get("p50_ms_2t") else None
        )
        # Multiply-accumulates per second (FLOPs / 2): how much of the CPU's arithmetic a row uses.
        row["gmac_per_s_2t"] = round(row["gflops"] / 2 / (p50 / 1000), 1) if p50 and row.get("gflops") else None
    write_tables(table, args.out, weights or "imagenet", args.runs)


def measure_peers(weights: str | None, work: Path, calibration: int, onnx: bool = True) -> list[dict]:
    """OpenVINO (+NNCF) from a SavedModel and ONNX Runtime from the Keras model written as ONNX, of the same
    VGG16, each conversion in its own child process."""
    import peers

    savedmodel = work / "peers-savedmodel"
    print("peers: writing the shared SavedModel ...", flush=True)
    peers.save_savedmodel(weights, savedmodel)
    rows = []
    makers = [(peers.openvino_rows, savedmodel)] + ([(peers.onnx_rows, weights)] if onnx else [])
    for make, source in makers:
        for row in make(source, work, calibration):
            print(f"  {row}", flush=True)  # each peer's rows as they come
            rows.append(row)
    return rows


COLUMNS = [
    "recipe",
    "status",
    "size_mb",
    "gzip_mb",
    "gflops",
    "p50_ms_1t",
    "p90_ms_1t",
    "p50_ms_2t",
    "p90_ms_2t",
    "x_vs_keras_2t",
    "x_vs_fp32_tflite_2t",
    "gmac_per_s_2t",
    "convert_s",
    "wall_s",
    "peak_rss_gb",
]


def fastest_artifact(table: list[dict], recipe: str) -> dict | None:
    """The recipe's fastest verified file at 2 threads, any format (``int8``, ``int8-onnx``, ``int8-openvino``)."""
    rows = [row for row in table if row["recipe"] == recipe or row["recipe"].startswith(f"{recipe}-")]
    rows = [row for row in rows if row.get("status") == "ok" and row.get("p50_ms_2t") and "peer" not in row["recipe"]]
    return min(rows, key=lambda row: row["p50_ms_2t"]) if rows else None


def peer_sentence(table: list[dict]) -> list[str]:
    """How vggedge's fastest verified int8 file (any format) and fast's stand against the fastest peer int8."""
    peers = [row for row in table if "peer" in row["recipe"] and "int8" in row["recipe"] and row.get("p50_ms_2t")]
    ours = fastest_artifact(table, "int8")
    if not peers or ours is None:
        return []
    best = min(peers, key=lambda row: row["p50_ms_2t"])
    int8, peer = ours["p50_ms_2t"], best["p50_ms_2t"]
    sentence = (
        f"At 2 threads, vggedge's fastest verified int8 file (`{ours['recipe']}`) takes {int8} ms per image against "
        f"{peer} ms for the fastest peer int8 ({best['recipe']}): {peer / int8:.2f}× its speed"
    )
    fast = fastest_artifact(table, "fast")
    if fast:
        sentence += f"; `fast`'s fastest (`{fast['recipe']}`) takes {fast['p50_ms_2t']} ms, "
        sentence += f"{peer / fast['p50_ms_2t']:.2f}× faster than that peer"
    return [sentence + ".", ""]


def write_tables(table: list[dict], out: Path, weights: str, runs: int) -> None:
    from vggedge.device.environment import describe_environment
    from vggedge.device.runtime import find_runtime

    env = dataclasses.asdict(describe_environment(find_runtime(), None))
    stem = f"fullsize-{environment_name()}" + ("-avx2-kernels" if cpuid_mask.masked() else "")
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    (out / f"{stem}.csv").write_text(buffer.getvalue())
    lines = [
        "# Full-size VGG16 (224x224, batch 1): every recipe, one run",
        "",
        *peer_sentence(table),
        f"Weights: {weights}. Latency: median (p50) and p90 of {runs} interleaved runs after warm-up, 1 and 2 threads.",
        f"Environment: {', '.join(f'{k}={v}' for k, v in env.items())}.",
        *(
            [
                "",
                "**AVX2 kernels on this CPU**: CPUID masked to an AVX2-only x86-64 (`--kernels avx2`, "
                "benchmarks/avx2_only.c), so XNNPACK and oneDNN ran the code paths an AVX2-only CPU gets, on this "
                "CPU's cores. Not an AVX2-only CPU's figures: the ratios between runtimes are the point.",
            ]
            if cpuid_mask.masked()
            else []
        ),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += [
        "| " + " | ".join("—" if row.get(c) is None else str(row.get(c)) for c in COLUMNS) + " |" for row in table
    ]
    lines += [
        f"\n{row['recipe']}: the graph vggedge.export.onnx wrote from the Keras model answered as it, within "
        f"{row['max_rel_diff_vs_keras']:.2g} of the largest class score on two images; its int8 is ONNX Runtime's "
        "quantize_static (QDQ, per-channel int8 weights, int8 activations)."
        for row in table
        if row.get("max_rel_diff_vs_keras") is not None
    ]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
