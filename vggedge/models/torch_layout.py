"""PyTorch VGG checkpoints as :class:`~vggedge.models.vgg_weights.VGGWeights`: torchvision's layout (``vgg11`` to
``vgg19``, with or without BatchNormalization, any classifier) and timm's (``vgg16.tv_in1k``).

The architecture is read from the weights' names and shapes, never from a list of known models:

- ``features.N``: a 4-D weight is a convolution; a 1-D weight with ``running_mean`` beside it is its BatchNorm2d.
  torchvision numbers every module of ``features`` (conv, [norm], ReLU, then a MaxPool after each block), so the gap
  between two convolutions' numbers tells whether a pool lies between them; the last block always ends in one.
- ``classifier.N`` (torchvision; nested indices for a replaced ``classifier[6]``; ``classifier.weight`` for a
  classifier replaced by one Linear; a BatchNorm1d directly after a Linear), or timm's ``pre_logits.fc1``
  (a 7x7 convolution: the same weights as a Linear on the channels-first flatten), ``pre_logits.fc2`` and
  ``head.fc``: the dense layers in order, a ReLU between two (as torchvision's classifier has; a state dict does not
  record activations, so the report says this was assumed). A first dense layer that reads one value per channel
  follows a global average pool (``avgpool = nn.AdaptiveAvgPool2d(1)``).

Files: ``.safetensors`` read without torch; ``.pth``/``.pt`` with ``torch.load(weights_only=True)`` (never an
unrestricted unpickle) when torch is installed; a TorchScript archive through ``torch.jit.load``.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vggedge.core.errors import ModelError
from vggedge.models.vgg_weights import Conv, Dense, Norm, VGGWeights, class_names_in

PREFIXES = ("module.", "model.", "_orig_mod.")  # DataParallel, Lightning and torch.compile wrap the names


class Checkpoint(NamedTuple):
    """What a PyTorch file holds: its tensors as numpy arrays by name, the module's own forward pass when it is a
    TorchScript archive (a state dict holds no code), and the class names it carries, if any."""

    state: dict[str, np.ndarray]
    runner: Callable[[np.ndarray], np.ndarray] | None = None
    class_names: list[str] | None = None


def read_state_dict(path: Path) -> Checkpoint:
    """A PyTorch checkpoint's tensors, forward pass and class names (:func:`class_names_in`: a training checkpoint's
    keys beside the weights, a safetensors file's metadata)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.numpy import load_file

        try:
            with safe_open(str(path), framework="numpy") as opened:
                metadata = opened.metadata() or {}
            return Checkpoint(dict(load_file(str(path))), None, class_names_in(metadata))
        except Exception as error:  # noqa: BLE001 - safetensors raises its own classes for a bad file
            raise ModelError(f"{path} is not a readable safetensors file: {str(error).splitlines()[0][:200]}") from None
    return _torch_state_dict(path)


def _torch_state_dict(path: Path) -> Checkpoint:
    try:
        import torch
    except ImportError:
        raise ModelError(
            f"{path} is a PyTorch checkpoint: reading it needs torch (pip install torch), or save it as .safetensors "
            "(safetensors.torch.save_file(model.state_dict(), 'model.safetensors')), which vggedge reads without torch"
        ) from None
    if _is_torchscript(path):
        module = torch.jit.load(str(path), map_location="cpu").eval()
        # The arrays share the module's storage: holding both costs one copy of the weights
        state = {name: value.detach().numpy() for name, value in module.state_dict().items()}
        return Checkpoint(state, _runner(module))
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises UnpicklingError and others for a whole pickled module
        raise ModelError(
            f"{path} holds more than tensors (a whole pickled module?): vggedge loads checkpoints with "
            "weights_only=True and never unpickles code; save model.state_dict() instead "
            f"({str(error).splitlines()[0][:160]})"
        ) from None
    names = class_names_in(loaded) if isinstance(loaded, dict) else None
    for key in ("state_dict", "model_state_dict", "model"):  # training checkpoints nest the weights
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict):
        raise ModelError(f"{path} does not hold a state dict (found {type(loaded).__name__})")
    state = {name: value.detach().cpu().numpy() for name, value in loaded.items() if hasattr(value, "detach")}
    return Checkpoint(state, None, names)


def _runner(module) -> Callable[[np.ndarray], np.ndarray]:  # noqa: ANN001 - a torch.jit.ScriptModule
    """A TorchScript module's own outputs for NCHW float32 images, one at a time (the module the user exported, not a
    re-implementation of it)."""
    import torch

    def run(images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        with torch.no_grad():
            return np.concatenate([module(batch[i : i + 1]).numpy() for i in range(len(batch))])

    return run


def functional_outputs(weights: VGGWeights, images: np.ndarray) -> np.ndarray:
    """``weights``' outputs for preprocessed NCHW float32 ``images`` by torch's own layers (conv2d, batch_norm, relu,
    max_pool2d, flatten, linear), as torchvision's VGG computes them in eval mode, ending in the activation vggedge's
    model ends in (softmax, or sigmoid for one unit). The tensors wrap the arrays without copying them."""
    import torch
    from torch.nn import functional

    def tensor(array: np.ndarray | None):  # noqa: ANN202 - torch.Tensor
        return None if array is None else torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    def normalized(x, norm: Norm | None):  # noqa: ANN001, ANN202 - torch.Tensor: BatchNorm2d or BatchNorm1d, eval mode
        if norm is None:
            return x
        statistics = (tensor(norm.mean), tensor(norm.variance), tensor(norm.gamma), tensor(norm.beta))
        return functional.batch_norm(x, *statistics, training=False, eps=norm.epsilon)

    outputs = []
    with torch.no_grad():
        for image in images:
            x = tensor(image[None])
            for conv in weights.convs:
                x = functional.conv2d(x, tensor(conv.kernel), tensor(conv.bias), padding=1)
                x = normalized(x, conv.norm)
                x = functional.relu(x)
                if conv.pool_after:
                    x = functional.max_pool2d(x, 2, 2)
            x = x.mean(dim=(2, 3)) if weights.pool == "average" else torch.flatten(x, 1)
            for index, layer in enumerate(weights.dense):
                x = functional.linear(x, tensor(layer.weight), tensor(layer.bias))
                x = normalized(x, layer.norm)
                x = functional.relu(x) if index < len(weights.dense) - 1 else x
            outputs.append((torch.sigmoid(x) if weights.classes == 1 else torch.softmax(x, dim=1)).numpy())
    return np.concatenate(outputs)


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive is a zip with a ``constants.pkl`` or ``code/`` beside its data."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith(("constants.pkl", "/code/")) or "/code/" in name for name in archive.namelist())


def vgg_from_state_dict(
    state: dict[str, np.ndarray],
    runner: Callable[[np.ndarray], np.ndarray] | None = None,
    class_names: list[str] | None = None,
) -> VGGWeights:
    """The VGG a torchvision- or timm-layout state dict holds (``runner``: the file's own forward pass, when it has
    one; ``class_names``: the ones it carries); one line naming what does not fit."""
    state = _unprefixed(state)
    features = _numbered(state, "features")
    if not features:
        raise ModelError("no features.N weights: not a torchvision- or timm-layout VGG state dict")
    convs = _convs(features)
    dense, layout = _dense_layers(state)
    known = {"features", "classifier", "pre_logits", "head"}
    stray = sorted(name for name in state if name.split(".")[0] not in known)
    if stray:
        raise ModelError(f"weights outside a VGG's features and classifier: {', '.join(stray[:5])}")
    norms = "with BatchNorm2d" if any(c.norm for c in convs) else "without BatchNormalization"
    weights = VGGWeights(
        convs, dense, "pytorch", f"{layout}, {len(convs)} convolutions {norms}", class_names, runner=runner
    )
    if "timm" not in layout and dense[0].weight.shape[1] == convs[-1].kernel.shape[0]:
        # fc1 reads one value per channel: the avgpool is AdaptiveAvgPool2d(1), a global average pool (a 1x1 feature
        # map's flatten is the same numbers), so any input size runs; the model takes GAP_INPUT_SIZE
        weights.pool = "average"
    weights.check()
    return weights


def _unprefixed(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for prefix in PREFIXES:
        if state and all(name.startswith(prefix) for name in state):
            state = {name[len(prefix) :]: value for name, value in state.items()}
    return state


def _numbered(state: dict[str, np.ndarray], module: str) -> dict[tuple[int, ...], dict[str, np.ndarray]]:
    """``{(N, ...): {"weight": ..., "bias": ...}}`` for every ``module.N[.M].param`` tensor, indices as numbers."""
    found: dict[tuple[int, ...], dict[str, np.ndarray]] = {}
    pattern = re.compile(rf"^{re.escape(module)}\.((?:\d+\.)+)(\w+)$")
    for name, value in state.items():
        match = pattern.match(name)
        if match:
            index = tuple(int(part) for part in match.group(1).strip(".").split("."))
            found.setdefault(index, {})[match.group(2)] = np.asarray(value)
    return dict(sorted(found.items()))


def _convs(features: dict[tuple[int, ...], dict[str, np.ndarray]]) -> list[Conv]:
    convs: list[tuple[int, Conv]] = []
    for (index, *_), params in features.items():
        weight = params.get("weight")
        if weight is not None and weight.ndim == 4:
            convs.append((index, Conv(weight.astype(np.float32, copy=False), params.get("bias"))))
        elif "running_mean" in params:
            if not convs or index != convs[-1][0] + 1:
                raise ModelError(f"features.{index}: a BatchNorm2d that does not follow a convolution")
            convs[-1][1].norm = Norm(params["weight"], params["bias"], params["running_mean"], params["running_var"])
        elif params:
            raise ModelError(f"features.{index}: {', '.join(params)} of no VGG layer (a conv or a BatchNorm2d)")
    step = 3 if any(conv.norm for _, conv in convs) else 2  # conv, [norm], ReLU
    for (index, conv), (following, _) in zip(convs, convs[1:], strict=False):
        if following - index not in (step, step + 1):
            raise ModelError(
                f"features.{index} and features.{following}: {following - index - 1} modules between two convolutions, "
                f"not a ReLU{' and a BatchNorm2d' if step == 3 else ''} (and a pool): not torchvision's VGG layout"
            )
        conv.pool_after = following - index == step + 1
    convs[-1][1].pool_after = True  # torchvision's features end with a MaxPool2d
    return [conv for _, conv in convs]


def _dense_layers(state: dict[str, np.ndarray]) -> tuple[list[Dense], str]:
    """The dense layers in order, and which layout they came in."""
    if any(name.startswith("pre_logits.") for name in state):  # timm
        layers = []
        for name in ("pre_logits.fc1", "pre_logits.fc2", "head.fc"):
            weight = state.get(f"{name}.weight")
            if weight is None:
                raise ModelError(f"timm's VGG layout without {name}.weight")
            kernel = weight.reshape(weight.shape[0], -1).astype(np.float32, copy=False)
            layers.append(Dense(kernel, state.get(f"{name}.bias")))
        return layers, "timm's VGG layout (pre_logits as convolutions)"
    numbered = _numbered(state, "classifier")
    if "classifier.weight" in state:  # the whole classifier replaced by one nn.Linear
        numbered = {(0,): {"weight": state["classifier.weight"], "bias": state.get("classifier.bias")}}
    layers: list[Dense] = []
    previous: tuple[int, ...] | None = None
    for index, params in numbered.items():
        where = "classifier." + ".".join(map(str, index))
        if "running_mean" in params:
            _attach_norm(layers, previous, index, params, where)
            continue
        weight = params.get("weight")
        if weight is None or weight.ndim != 2:
            raise ModelError(f"{where}: {', '.join(params)} of no Linear layer")
        layers.append(Dense(weight.astype(np.float32, copy=False), params.get("bias")))
        previous = index
    if not layers:
        raise ModelError("no classifier.N weights: a VGG state dict without its classifier")
    return layers, "torchvision's VGG layout (a ReLU assumed between dense layers)"


def _attach_norm(
    layers: list[Dense], previous: tuple[int, ...] | None, index: tuple[int, ...], params: dict, where: str
) -> None:
    """A BatchNorm1d that directly follows a Linear (the next module number, as in ``Linear, BatchNorm1d, ReLU``)
    belongs to it. Anywhere else a ReLU or a dropout may lie between them, which a state dict does not record."""
    adjacent = previous is not None and index[:-1] == previous[:-1] and index[-1] == previous[-1] + 1
    if not adjacent or layers[-1].norm is not None:
        raise ModelError(
            f"{where}: a BatchNorm1d that does not directly follow a Linear has no exact translation (whether a ReLU "
            "lies between them is not in a state dict): export the model to ONNX, which records it"
        )
    layers[-1].norm = Norm(params["weight"], params["bias"], params["running_mean"], params["running_var"])
