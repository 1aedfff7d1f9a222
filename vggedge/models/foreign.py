"""A VGG from another framework as a vggedge baseline: read (:mod:`~vggedge.models.torch_layout`,
:mod:`~vggedge.models.onnx_vgg`), translated exactly (:func:`~vggedge.models.vgg_weights.keras_vgg`), and verified
against its source before any recipe runs.

The source runs itself where it holds code: an ONNX file by ONNX Runtime, a TorchScript file by torch when it is
installed. A state dict holds weights only: it runs as the NCHW graph of its weights as ``torch.onnx.export`` writes it
(channels-first flatten, PyTorch's BatchNorm), by ONNX Runtime, an implementation of the source's semantics
independent of the translation. Both see the same probe images, preprocessed as the source
expects; a largest difference in class scores above :data:`MAX_SCORE_DIFFERENCE` stops the run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from vggedge.core.errors import ModelError
from vggedge.models.vgg import Preprocess, preprocess_pixels

FOREIGN_SUFFIXES = {".safetensors": "pytorch", ".pth": "pytorch", ".pt": "pytorch", ".onnx": "onnx"}
MAX_SCORE_DIFFERENCE = 1e-3  # class probabilities; float32 rounding in two runtimes stays near 1e-5
PROBE_IMAGES = 8


def read_foreign(path: Path):  # noqa: ANN201 - VGGWeights
    """The VGG in a PyTorch checkpoint or an ONNX file, as weights in the source's layout."""
    from vggedge.models.onnx_vgg import read_onnx_vgg
    from vggedge.models.torch_layout import read_state_dict, vgg_from_state_dict

    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if path.suffix == ".safetensors" and importlib.util.find_spec("safetensors") is None:
        missing.append("safetensors")
    if missing:
        raise ModelError(
            f"{path}: reading and verifying a {FOREIGN_SUFFIXES[path.suffix]} file needs {' '.join(missing)}: "
            f"pip install {' '.join(missing)}"
        )
    if path.suffix == ".onnx":
        return read_onnx_vgg(path)
    return vgg_from_state_dict(*read_state_dict(path))  # tensors, TorchScript's forward pass, class names


def probe_images(size: int, count: int = PROBE_IMAGES) -> np.ndarray:
    """Deterministic RGB pixels in [0, 255]: random noise and smooth gradients, so both busy and flat inputs are
    compared."""
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 255, (count // 2, size, size, 3))
    ramp = np.linspace(0, 255, size)
    smooth = [np.stack([np.add.outer(ramp * a, ramp * b) / 2 % 256 for a, b in ((1, 0), (0, 1), (1, 1))], -1)
              for _ in range(count - count // 2)]  # fmt: skip
    for index, image in enumerate(smooth):
        smooth[index] = np.roll(image, 7 * index, axis=(0, 1))
    return np.concatenate([noise, np.stack(smooth)]).astype(np.float32)


def as_scores(outputs: np.ndarray) -> np.ndarray:
    """Class scores from a source that may end in logits (a torchvision export does): softmax over classes, a
    sigmoid for one unit, unless they already are."""
    outputs = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    if outputs.shape[1] == 1:
        return outputs if ((outputs >= 0) & (outputs <= 1)).all() else 1 / (1 + np.exp(-outputs))
    if (outputs >= 0).all() and np.allclose(outputs.sum(axis=1), 1, atol=1e-4):
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def source_outputs(weights, path: Path, pixels: np.ndarray) -> tuple[np.ndarray, str]:  # noqa: ANN001 - VGGWeights
    """The source's own outputs for preprocessed NHWC ``pixels``, and what computed them: an ONNX file by ONNX Runtime,
    a TorchScript file by torch; a state dict (which holds no code to run) as PyTorch's NCHW layers over its weights,
    by torch when it is installed (on the arrays in place: no copy of the weights), else as the NCHW graph
    ``torch.onnx.export`` would write, by ONNX Runtime (a proto, its bytes and a session: copies of a 0.53 GB model)."""
    from vggedge.models.onnx_vgg import nchw_graph, run_onnx

    if path.suffix == ".onnx":
        return run_onnx(path, pixels, weights.channels_last_input), "the ONNX file run by onnxruntime"
    if weights.runner is not None:
        return weights.runner(pixels.transpose(0, 3, 1, 2)), f"the TorchScript module run by torch {torch_version()}"
    if importlib.util.find_spec("torch") is not None:
        from vggedge.models.torch_layout import functional_outputs

        outputs = functional_outputs(weights, pixels.transpose(0, 3, 1, 2))
        return outputs, f"its weights as PyTorch's NCHW layers, run by torch {torch_version()}"
    graph = nchw_graph(weights).SerializeToString()  # the proto's own copy of the weights freed at once
    return run_onnx(graph, pixels), "its weights as PyTorch's NCHW graph, run by onnxruntime"


def torch_version() -> str:
    import torch

    return torch.__version__.split("+")[0]


def source_answers(weights, path: Path, preprocess: Preprocess) -> tuple[np.ndarray, str]:  # noqa: ANN001
    """The source's class scores on :func:`probe_images` and what computed them. Run before the Keras model is built,
    so the source's runtime and its copy of the weights are gone when the translation holds its own (a full-size
    VGG16 is 0.53 GB a copy)."""
    images = probe_images(weights.input_size())
    outputs, reference = source_outputs(weights, path, preprocess_pixels(images, preprocess))
    return as_scores(outputs), reference


def verify_translation(  # noqa: ANN001
    model, weights, path: Path, preprocess: Preprocess, answers: tuple[np.ndarray, str] | None = None
) -> dict:
    """The Keras translation against its source on :func:`probe_images` (``answers``: the source's, from
    :func:`source_answers`, else computed here): the record the report's model section carries; one line and no run
    when they differ."""
    images = probe_images(int(model.input_shape[1]))
    ours = np.asarray(model.predict(images, batch_size=4, verbose=0), dtype=np.float64)
    theirs, reference = answers or source_answers(weights, path, preprocess)
    difference, agreement = compared(ours, theirs)
    record = {
        "framework": weights.framework,
        "file": str(path),
        "layout": weights.described(),
        "blocks": weights.blocks,
        "verified_against": reference,
        "images": len(images),
        "max_score_difference": difference,
        "top1_agreement": agreement,
    }
    if not difference <= MAX_SCORE_DIFFERENCE:
        raise ModelError(
            f"{path}: the Keras translation does not answer as its source ({reference}): class scores differ by up "
            f"to {difference:.3g} on {len(images)} probe images (top-1 agreement {agreement:.0%}); not translated"
        )
    return record


def compared(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float]:
    """(largest class-score difference, top-1 agreement) of two models' scores on the same images."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    difference = float(np.abs(ours - theirs).max())
    if ours.shape[1] > 1:
        return difference, float(np.mean(ours.argmax(axis=1) == theirs.argmax(axis=1)))
    return difference, float(np.mean((ours > 0.5) == (theirs > 0.5)))


def verify_on_images(translation: dict, preprocess: Preprocess, images: np.ndarray, ours: np.ndarray) -> dict:
    """The translation checked again on a run's evaluation images (raw pixels; ``ours``: the translated model's scores
    there, which the run computes anyway): the source is read again and run on them as at load, since the probe images
    there are synthetic. The record gains ``evaluation`` (images, largest difference, agreement); one line and no run
    when they differ."""
    path = Path(translation["file"])
    weights = read_foreign(path)
    outputs, reference = source_outputs(weights, path, preprocess_pixels(images.astype(np.float32), preprocess))
    del weights  # the source's copy of the weights, before the comparison's arrays
    difference, agreement = compared(ours, as_scores(outputs))
    if not difference <= MAX_SCORE_DIFFERENCE:
        raise ModelError(
            f"{path}: the Keras translation does not answer as its source ({reference}) on the evaluation images: "
            f"class scores differ by up to {difference:.3g} on {len(images)} (top-1 agreement {agreement:.1%})"
        )
    evaluation = {"images": len(images), "max_score_difference": difference, "top1_agreement": agreement}
    return {**translation, "evaluation": evaluation}
