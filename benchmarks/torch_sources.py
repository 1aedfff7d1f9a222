"""torchvision's own VGGs through vggedge, in every file a PyTorch user holds: read, translated, checked against torch
itself on real photographs, then the int8 recipe.

    python benchmarks/torch_sources.py --data ../shared/data/hymenoptera [--work DIR] [--out reports/benchmarks]

Needs torch and torchvision beside vggedge's ``all`` extra. vggedge does not need torch for a ``.safetensors`` or
``.onnx`` file and its CI does not install it (PyPI's Linux wheel is a CUDA build of several GB), so this benchmark,
not the suite, is where torchvision's own modules, ``torch.save``, TorchScript and ``torch.onnx.export`` meet vggedge.

Models, full size at 224 pixels, torchvision's random initialisation (``torch.manual_seed(0)``; ImageNet weights
cannot be downloaded here):

- ``vgg16``: ``torchvision.models.vgg16(weights=None)`` with ``classifier[6]`` replaced by ``Linear(4096, N)``, the
  tutorials' fine-tune;
- ``vgg16_bn``: ``vgg16_bn(weights=None)`` with its whole classifier replaced by ``Linear(25088, 256), ReLU,
  Dropout, Linear(256, N)``, and every BatchNorm2d given random running statistics (fresh ones are the identity).

N is the data's class count. Each model is written as ``.pth`` (``torch.save(state_dict)``), ``.safetensors``,
TorchScript (``torch.jit.trace``, ``.pt``) and ONNX twice: ``torch.onnx.export``'s default exporter with one example
image (a fixed batch of 1), and its legacy TorchScript-based one with a dynamic batch. For each file: ``vggedge
inspect`` in a child process (wall time and peak memory of reading, translating and verifying), the translation
against the torch module on the data's evaluation photos (largest logit difference, relative to the logits' range,
and top-1 agreement), and, on one state dict and one ONNX export of each model, ``vggedge optimize --recipe int8``
on the data (the ``.safetensors`` run with ``--formats all``): the report's status, agreement with the translated
model, size and p50 on this machine. Remedies are off (``--no-remedies``): on random convolutions int8 flips a few
near-tied photos (96.7% agreement on vgg16.pth), and the remedies then spent six minutes per run on a property of
random weights, not of the translation.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SIZE = 224
# The int8 recipe runs on one state dict and one ONNX export of each model (the .pth too for vgg16): the other files
# hold the same weights, and each run at full size takes minutes.
INT8_RUNS = {("vgg16", "safetensors"), ("vgg16", "pth"), ("vgg16", "onnx"), ("vgg16_bn", "safetensors"),
             ("vgg16_bn", "onnx")}  # fmt: skip
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])  # torchvision's ImageNet normalization


def torchvision_models(classes: int) -> dict:
    """{name: torch module in eval mode}, seeded."""
    import torch
    from torch import nn
    from torchvision import models

    torch.manual_seed(0)
    plain = models.vgg16(weights=None)
    plain.classifier[6] = nn.Linear(4096, classes)
    normed = models.vgg16_bn(weights=None)
    normed.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 256), nn.ReLU(True), nn.Dropout(), nn.Linear(256, classes))
    for module in normed.features:
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return {"vgg16": plain.eval(), "vgg16_bn": normed.eval()}


def fit_last_layer(module, pixels: np.ndarray, labels: np.ndarray) -> float:  # noqa: ANN001
    """The tutorials' fine-tune, cut to its last layer: ``classifier[-1]`` fitted to the training photos (the layers
    below frozen, their outputs computed once; 200 full-batch Adam steps, seeded). Random weights give near-tied
    class scores that no quantization can keep in order; a fitted last layer gives the margins a trained one has.
    Returns the training accuracy."""
    import torch

    torch.manual_seed(0)
    below = torch.nn.Sequential(module.features, module.avgpool, torch.nn.Flatten(1), *module.classifier[:-1])
    nchw = ((pixels / 255 - MEAN) / STD).transpose(0, 3, 1, 2).astype(np.float32)
    with torch.no_grad():
        features = torch.cat([below(torch.from_numpy(nchw[i : i + 16])) for i in range(0, len(nchw), 16)])
    last, targets = module.classifier[-1], torch.from_numpy(labels)
    optimizer = torch.optim.Adam(last.parameters(), lr=1e-3)
    for _ in range(200):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(last(features), targets).backward()
        optimizer.step()
    with torch.no_grad():
        return float((last(features).argmax(1) == targets).float().mean())


def write_files(name: str, module, folder: Path) -> dict[str, Path]:  # noqa: ANN001
    """The files of ``module``: {kind: path}."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {key: value.contiguous() for key, value in module.state_dict().items()}
    files = {
        "pth": folder / f"{name}.pth",
        "safetensors": folder / f"{name}.safetensors",
        "torchscript": folder / f"{name}.torchscript.pt",
        "onnx": folder / f"{name}.onnx",
        "onnx-legacy": folder / f"{name}.legacy.onnx",
    }
    torch.save(state, files["pth"])
    save_file(state, str(files["safetensors"]))
    example = torch.zeros(1, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.jit.trace(module, example).save(str(files["torchscript"]))
        # torch's default exporter (torch.export, since 2.9) as a tutorial calls it: one example image, a fixed batch
        torch.onnx.export(module, (example,), str(files["onnx"]), input_names=["input"], output_names=["logits"])
        batch = {"input": {0: "batch"}, "logits": {0: "batch"}}
        torch.onnx.export(module, example, str(files["onnx-legacy"]), dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes=batch)  # fmt: skip
    return files


def file_mb(path: Path) -> float:
    """The file's size with its external data (torch's default ONNX exporter writes the weights to ``.onnx.data``)."""
    data = path.with_name(path.name + ".data")
    return (path.stat().st_size + (data.stat().st_size if data.is_file() else 0)) / 1e6


def photos(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The photos in ``root``'s class folders as 224x224 RGB pixels (stretched, as vggedge resizes), and their
    class numbers in sorted folder order."""
    from PIL import Image

    folders = sorted(p for p in root.iterdir() if p.is_dir())
    paths = [(p, label) for label, folder in enumerate(folders) for p in sorted(folder.iterdir())
             if p.suffix.lower() in {".jpg", ".jpeg", ".png"}]  # fmt: skip
    pixels = [np.asarray(Image.open(p).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)) for p, _ in paths]
    return np.stack(pixels).astype(np.float32), np.array([label for _, label in paths])


def torch_logits(module, pixels: np.ndarray) -> np.ndarray:  # noqa: ANN001
    import torch

    nchw = ((pixels / 255 - MEAN) / STD).transpose(0, 3, 1, 2).astype(np.float32)
    with torch.no_grad():
        return np.concatenate([module(torch.from_numpy(nchw[i : i + 16])).numpy() for i in range(0, len(nchw), 16)])


def keras_logits(path: Path, pixels: np.ndarray) -> np.ndarray:
    """The translated model's logits: its last dense layer's input times its kernel, before the softmax."""
    from vggedge.backend.keras_env import keras
    from vggedge.models.loading import load_model_file

    model = load_model_file(path, "torch").model
    last = model.get_layer("predictions")
    features = keras.Model(model.inputs, last.input).predict(pixels, batch_size=16, verbose=0)
    kernel, bias = last.get_weights()
    return features.astype(np.float64) @ kernel + bias


def compare(module, path: Path, pixels: np.ndarray) -> dict:  # noqa: ANN001
    theirs = torch_logits(module, pixels).astype(np.float64)
    ours = keras_logits(path, pixels)
    spread = float(theirs.max() - theirs.min())
    return {
        "max_logit_difference": float(np.abs(ours - theirs).max()),
        "relative_to_range": float(np.abs(ours - theirs).max() / spread),
        "agreement": float(np.mean(ours.argmax(1) == theirs.argmax(1))),
        "images": len(pixels),
    }


def vggedge_command(*args: object) -> list[str]:
    return [sys.executable, "-m", "vggedge", *map(str, args)]


def inspect_file(path: Path) -> dict:
    from measure import run_measured

    done = run_measured(vggedge_command("inspect", path, "--preprocess", "torch", "--json"))
    if done.exit_code:
        return {"inspect": f"failed: {done.last_error_line()}"}
    facts = json.loads(done.stdout[done.stdout.index("{") :])
    translation = facts.get("translation") or {}
    return {
        "inspect_s": done.wall_s,
        "inspect_peak_gb": done.peak_rss_gb,
        "probe_difference": translation.get("max_score_difference"),
        "layout": translation.get("layout"),
    }


def int8_run(path: Path, data: Path, out: Path, formats: str) -> dict:
    from measure import run_measured

    command = vggedge_command("optimize", "--recipe", "int8", "--model", path, "--data", data, "--out", out,
                              "--preprocess", "torch", "--formats", formats, "--no-remedies", "-q")  # fmt: skip
    done = run_measured(command)
    report_path = out / "int8" / "report.json"
    if not report_path.is_file():
        return {"int8": f"no report (exit {done.exit_code}): {done.last_error_line()}"}
    report = json.loads(report_path.read_text())
    artifacts = [artifact_cell(a) for a in report["artifacts"]]
    return {
        "int8_s": done.wall_s,
        "int8_peak_gb": done.peak_rss_gb,
        "int8_status": report["result"]["status"],
        "int8_artifacts": "; ".join(artifacts),
        "baseline_p50_ms": (report["baseline"].get("latency_ms") or {}).get("p50"),
        "source": report["model"].get("translation", {}).get("file") if report.get("model") else None,
    }


def artifact_cell(a: dict) -> str:
    if a.get("p50_ms") is None or a.get("agreement") is None:
        return f"{a['format']} {a['status']}"
    size_mb = a["size_bytes"] / 1e6
    return f"{a['format']} {a['status']} {a['agreement'] * 100:.1f}% {size_mb:.1f} MB {a['p50_ms']:.1f} ms"


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| model | file | MB | inspect s | inspect peak GB | largest logit difference (of the range) | top-1 agreement "
        "with torch | int8 status | int8 artifacts (format, status, agreement, MB, p50) | int8 run s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['kind']} | {r['mb']:.1f} | {r.get('inspect_s', '—')} "
            f"| {r.get('inspect_peak_gb', '—')} "
            f"| {r['max_logit_difference']:.2e} ({r['relative_to_range']:.1e}) | {r['agreement'] * 100:.1f}% of "
            f"{r['images']} | {r.get('int8_status', r.get('int8', '—'))} | {r.get('int8_artifacts', '—')} "
            f"| {r.get('int8_s', '—')} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="class folders (or train/ and val/) of photos")
    parser.add_argument("--work", type=Path, default=Path("/tmp/vggedge-torch-sources"))
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    args = parser.parse_args()
    import torch
    import torchvision
    from fullsize import environment_name

    import vggedge
    from vggedge.device.environment import cpu_features, cpu_name

    train, labels = photos(args.data / "train")
    pixels, _ = photos(args.data / "val")
    rows, fitted = [], {}
    for name, module in torchvision_models(int(labels.max()) + 1).items():
        fitted[name] = fit_last_layer(module, train, labels)
        files = write_files(name, module, args.work / "files")
        for kind, path in files.items():
            started = time.perf_counter()
            row = {"model": name, "kind": kind, "mb": file_mb(path), **compare(module, path, pixels)}
            row.update(inspect_file(path))
            if (name, kind) in INT8_RUNS:
                formats = "all" if kind == "safetensors" else "tflite"
                row.update(int8_run(path, args.data, args.work / "runs" / f"{name}-{kind}", formats))
            rows.append(row)
            print(json.dumps(row), f"({time.perf_counter() - started:.0f} s)", flush=True)
    lines = [
        "# torchvision's VGGs in every PyTorch file form: translation checked against torch, then int8",
        "",
        f"`python benchmarks/torch_sources.py --data {args.data}` on {cpu_name()} "
        f"({', '.join(cpu_features()) or 'no listed features'}), {platform.machine()}, 2 threads; torch "
        f"{torch.__version__}, torchvision {torchvision.__version__}, vggedge {vggedge.__version__}. Random weights "
        f"(torchvision's initialisation, seed 0), the last layer fitted to the {len(train)} training photos (training "
        f"top-1: {', '.join(f'{n} {a:.0%}' for n, a in fitted.items())}); logits compared on the {len(pixels)} "
        "evaluation photos at 224 pixels, torch running the module itself, vggedge the Keras model it translated from "
        "the file. The int8 run's agreement is with that translated model; on random features its top-1 is not a "
        "result.",
        "",
        *table(rows),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"torch-sources-{environment_name()}.md").write_text(text)
    (args.out / f"torch-sources-{environment_name()}.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
