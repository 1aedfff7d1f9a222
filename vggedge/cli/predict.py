"""``vggedge predict MODEL.tflite IMAGE|DIR|GLOB …``: class names and scores per image (no TensorFlow needed)."""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from vggedge.cli.options import VerboseOption, apply_verbosity
from vggedge.core.errors import UserError
from vggedge.core.formatting import count, printable

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def expand_images(sources: list[str]) -> list[Path]:
    """Files as given, folders walked for images (sorted), quoted globs expanded; a source that names
    nothing is an error before any prediction."""
    found: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            images = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise UserError(f"folder {source} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            found += images
        elif path.is_file():
            found.append(path)
        elif any(char in source for char in "*?["):
            matches = sorted(Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file())
            if not matches:
                raise UserError(f"{source} matches no file")
            found += matches
        else:
            raise UserError(f"image {source} does not exist")
    return found


ModelOption = Annotated[Path, typer.Argument(help="A .tflite classifier (a vggedge run's model.tflite).")]

ImagesOption = Annotated[
    Optional[list[str]],
    typer.Argument(
        help="Image files, folders (walked for images) or quoted globs ('photos/*.jpg').",
        show_default=False,
    ),
]

TopOption = Annotated[int, typer.Option(min=1, help="Classes to show per image.")]

AsJsonOption = Annotated[bool, typer.Option("--json", help="One JSON document on stdout instead of lines.")]

ThreadsOption = Annotated[Optional[int], typer.Option(min=1, help="Interpreter threads (default: all cores).")]

ResizeOption = Annotated[
    Optional[str],
    typer.Option(
        help="How pictures are fitted to the input: stretch, center-crop or letterbox. Default: as the model "
        "was measured (its metadata says; stretch for a model that does not).",
        show_default=False,
    ),
]

LabelsOption = Annotated[
    Optional[Path],
    typer.Option(help="Class names, one a line (default: the model's metadata, else labels.txt beside it)."),
]

CameraOption = Annotated[
    bool, typer.Option("--camera", help="Classify the Raspberry Pi camera's frames live (Picamera2) until Ctrl-C.")
]

FramesOption = Annotated[Optional[int], typer.Option(min=1, help="--camera: stop after this many frames.")]

RuntimeOption = Annotated[
    Optional[str],
    typer.Option(envvar="VGGEDGE_RUNTIME", help="Force a runtime: ai-edge-litert, tflite-runtime or tensorflow."),
]


def predict_command(
    model: ModelOption,
    images: ImagesOption = None,
    top: TopOption = 3,
    as_json: AsJsonOption = False,
    threads: ThreadsOption = None,
    resize: ResizeOption = None,
    labels: LabelsOption = None,
    camera: CameraOption = False,
    frames: FramesOption = None,
    runtime: RuntimeOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Classify images (or camera frames) with a TFLite model.

    The top classes and their scores per image, then the model's p50
    latency. Class names come from the model itself (standard TFLite metadata), or labels.txt beside it."""
    apply_verbosity(verbose)
    if camera and images:
        raise UserError("--camera classifies the camera's frames: give no images with it")
    if not camera and not images:
        raise UserError("give images (files, folders or quoted globs) to classify, or --camera")
    from vggedge.device import call_guard
    from vggedge.device.classifier import Classifier

    call_guard.install()  # a model that loops for ever is stopped in one line, and Ctrl-C works inside a call
    classifier = Classifier(model, threads=threads, labels=labels, runtime=runtime, resize=resize)  # checked first
    paths = [] if camera else expand_images(images or [])
    if classifier.labels is None and not as_json:
        typer.echo(f"note: {printable(classifier.labels_source)}", err=True)
    if camera:
        from vggedge.device.camera import run_camera

        run_camera(classifier, lambda line: typer.echo(line), max_frames=frames)
        return
    from vggedge.device.classifier import classify_files

    def say(path: Path, best: list) -> None:
        if not as_json:
            answers = ", ".join(f"{printable(label, 80)} {score:.3f}" for label, score in best)
            typer.echo(f"{printable(path)}: {answers}")  # a name with a newline or an escape cannot forge lines

    done = classify_files(classifier, paths, top, on_answer=say)
    answers, skipped, p50 = done.answers, done.skipped, done.p50_ms
    model_info = classifier.model
    summary = (
        f"{count(len(answers), 'image')}, p50 {p50:.2f} ms ({model_info.runtime.name}, {model_info.threads} threads)"
    )
    if as_json:
        document = {
            "model": str(model),
            "labels": classifier.labels_source,
            "runtime": f"{model_info.runtime.name} {model_info.runtime.version}",
            "threads": model_info.threads,
            "latency_ms": {"p50": round(p50, 3), "images": len(answers)},
            "skipped": skipped,
            "images": answers,
        }
        typer.echo(json.dumps(document, indent=2))
        return
    typer.echo(summary)
    if skipped:
        shown = "; ".join(skipped[:3]) + ("; …" if len(skipped) > 3 else "")
        typer.echo(f"skipped {count(len(skipped), 'file')} that could not be read: {printable(shown, 1000)}", err=True)
