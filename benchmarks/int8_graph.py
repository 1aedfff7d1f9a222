"""What the full-size int8 graph leaves to the CPU's kernels: the op each node is, what XNNPACK takes, and what the
uint8 input and output cost, side by side.

Issue 20 found vggedge's full-size ``int8`` at 0.70x OpenVINO + NNCF int8's speed on an AVX2-only EPYC (tied on
a VNNI CPU). The gap is either the graph (an op left outside the XNNPACK delegate, the QUANTIZE of the uint8
input, the output) or the kernels. This measures the graph's part, which does not depend on the CPU:

- every node of the int8 file by op (the interpreter without its default delegate), and what is left outside the
  XNNPACK delegate once it is applied (the nodes that stay builtin ops, and how many delegate partitions);
- the same model converted with int8 input and output instead of uint8 (no QUANTIZE of the input, no requantize
  of the output), both timed interleaved at 1 and 2 threads in this process: the share of the input and output
  ops. A CPU with slower conv kernels (AVX2 against this one) spends a smaller share there, so this CPU's share
  is an upper bound for it.

    python benchmarks/int8_graph.py [--runs 40]

Random weights and random calibration images (latency and graph only). Writes
``reports/benchmarks/int8-graph-<environment>.md``.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fullsize import THREADS, environment_name, time_interleaved  # noqa: E402


def op_census(path: Path) -> tuple[collections.Counter, collections.Counter, int]:
    """(every node by op, the nodes left outside XNNPACK by op, the number of delegate partitions).

    Once delegated, the interpreter still lists the nodes a DELEGATE node replaced, so what runs is found by
    walking back from the output: a tensor's producer is the DELEGATE node that outputs it, else its node."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    plain = Interpreter(
        model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    plain.allocate_tensors()
    every = collections.Counter(op["op_name"] for op in plain._get_ops_details())
    delegated = Interpreter(model_path=str(path), num_threads=2)
    delegated.allocate_tensors()
    details = delegated._get_ops_details()
    producer = {int(t): op for op in details if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    producer |= {int(t): op for op in details if op["op_name"] == "DELEGATE" for t in op["outputs"]}
    outside: collections.Counter = collections.Counter()
    partitions, seen = 0, set()
    pending = [int(output["index"]) for output in delegated.get_output_details()]
    while pending:
        op = producer.get(pending.pop())
        if op is None or op["index"] in seen:
            continue  # a graph input or a constant, or a node already counted
        seen.add(op["index"])
        if op["op_name"] == "DELEGATE":
            partitions += 1
        else:
            outside[op["op_name"]] += 1
        pending += [int(t) for t in op["inputs"] if t >= 0]
    return every, outside, partitions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--calibration", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    args = parser.parse_args()

    from vggedge.backend.keras_env import tf
    from vggedge.core.quantization import Quantization
    from vggedge.export.convert import convert
    from vggedge.models.loading import load_imagenet_vgg16

    work = Path(tempfile.mkdtemp(prefix="vggedge-int8-graph-"))
    model = load_imagenet_vgg16("random").model
    pixels = np.random.default_rng(1).integers(0, 256, size=(args.calibration, 224, 224, 3))
    pixels = pixels.astype(np.uint8)
    paths = {"uint8 in/out (as shipped)": work / "uint8-io.tflite", "int8 in/out": work / "int8-io.tflite"}
    for (name, path), io_type in zip(paths.items(), (None, tf.int8), strict=True):
        print(f"converting {name} ...", flush=True)
        path.write_bytes(convert(model, Quantization.INT8, pixels, io_type=io_type))
    del model

    census = {name: op_census(path) for name, path in paths.items()}
    print(f"timing {args.runs} interleaved rounds ...", flush=True)
    p50 = {key: statistics.median(times) for key, times in time_interleaved(paths, args.runs).items()}

    lines = [
        "# The full-size int8 VGG16 graph: its ops, what XNNPACK takes, what the input and output cost",
        "",
        f"Environment: `{environment_name()}`; command: `python benchmarks/int8_graph.py --runs {args.runs}`. "
        f"Random weights, {args.calibration} random calibration images. Latency: medians of "
        f"{args.runs} interleaved batch-1 runs in one process (this machine, not a Pi).",
        "",
        "| model | nodes by op | left outside XNNPACK | delegate partitions | p50 ms 1 thr | p50 ms 2 thr |",
        "|---|---|---|---|---|---|",
    ]
    for name, (every, outside, partitions) in census.items():
        ops = ", ".join(f"{op} {count}" for op, count in sorted(every.items()))
        left = ", ".join(f"{op} {count}" for op, count in sorted(outside.items())) or "none"
        lines.append(f"| {name} | {ops} | {left} | {partitions} | {p50[(name, 1)]:.2f} | {p50[(name, 2)]:.2f} |")
    shipped, bare = paths
    lines += [
        "",
        "Share of the uint8 input's QUANTIZE and the output's requantize (1 − int8-I/O p50 / shipped p50): "
        + ", ".join(f"{1 - p50[(bare, t)] / p50[(shipped, t)]:+.1%} at {t} thread{'s' * (t > 1)}" for t in THREADS)
        + ".",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"int8-graph-{environment_name()}.md").write_text(text)


if __name__ == "__main__":
    main()
