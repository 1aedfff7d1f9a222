"""VGGs as ONNX graphs, both ways:

- :func:`read_onnx_vgg`: an ONNX file of VGG topology as :class:`~vggedge.models.vgg_weights.VGGWeights`:
  ``torch.onnx.export`` of a torchvision or timm VGG (NCHW), or a TensorFlow export (NHWC images transposed to NCHW
  for the convolutions and back before the flatten, as tf2onnx and vggedge's own writer do); one line naming an
  operator with no exact translation;
- :func:`nchw_graph`: :class:`VGGWeights` as the graph ``torch.onnx.export`` would write for them. A state dict read
  without torch is checked against this graph run by ONNX Runtime: an implementation of the source's semantics
  (channels-first flatten, PyTorch's BatchNorm) independent of the Keras translation it verifies.

onnx is imported here only, when a foreign file is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vggedge.core.errors import ModelError
from vggedge.models.vgg_weights import Conv, Dense, Norm, VGGWeights, class_names_in

SKIPPED = {
    "Relu",
    "Dropout",
    "Identity",
    "Softmax",
    "Sigmoid",
    "Flatten",
    "Reshape",
    "Shape",
    "Gather",
    "Unsqueeze",
    "Concat",
    "Constant",
}  # fmt: skip - activations vggedge adds itself, inference no-ops, a flatten's plumbing
OPSET = 17


def read_onnx_vgg(path: Path) -> VGGWeights:
    """The VGG an NCHW ONNX file holds, by its operators in order."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as error:  # noqa: BLE001 - onnx raises DecodeError and others for a bad file
        raise ModelError(f"{path} is not a readable ONNX file: {str(error).splitlines()[0][:200]}") from None
    tensors = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:  # torch.onnx.export may write weights as Constant nodes
        if node.op_type == "Constant" and node.attribute:
            tensors[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    convs: list[Conv] = []
    dense: list[Dense] = []
    # "between": a Relu or a Dropout since the last dense layer (a normalization after one does not fold into it)
    layout = {"input": "NCHW", "flatten": "chw", "pool": "flatten", "between": False}
    for node in model.graph.node:
        if node.op_type == "Transpose":
            _read_transpose(node, convs, dense, layout)
            continue
        _read_node(node, tensors, convs, dense, layout)
        if node.op_type in ("Gemm", "MatMul"):
            layout["between"] = False
        elif node.op_type in ("Relu", "Dropout"):
            layout["between"] = True
    opset = model.opset_import[0].version
    described = f"ONNX graph (opset {opset}), {layout['input']} input"
    weights = VGGWeights(convs, dense, "onnx", described, pool=layout["pool"])
    weights.class_names = class_names_in({prop.key: prop.value for prop in model.metadata_props})
    weights.flatten_order, weights.channels_last_input = layout["flatten"], layout["input"] == "NHWC"
    weights.image_size = _declared_side(model, weights.channels_last_input)
    weights.check()
    return weights


def _declared_side(model, channels_last: bool) -> int | None:  # noqa: ANN001
    """The square image side the graph's input declares, or None when it leaves it open."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    sides = [dim.dim_value for dim in dims][1:3] if channels_last else [dim.dim_value for dim in dims][2:4]
    return sides[0] if len(sides) == 2 and sides[0] == sides[1] and sides[0] > 0 else None


def _read_transpose(node, convs: list[Conv], dense: list[Dense], layout: dict) -> None:  # noqa: ANN001
    """A TensorFlow export's two transposes: NHWC images to NCHW before the first convolution, and back to NHWC
    before the flatten (its first dense layer's rows are then in (H, W, C) order)."""
    perm = list(_attributes(node).get("perm", []))
    if perm == [0, 3, 1, 2] and not convs:
        layout["input"] = "NHWC"
    elif perm == [0, 2, 3, 1] and convs and not dense:
        layout["flatten"] = "hwc"
    else:
        raise ModelError(f"Transpose node {node.name or node.output[0]!r} (perm {perm}): not a VGG's layout change")


def _attributes(node) -> dict:  # noqa: ANN001
    from onnx import helper

    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _read_node(node, tensors: dict, convs: list[Conv], dense: list[Dense], layout: dict) -> None:  # noqa: ANN001
    """One operator into ``convs`` or ``dense``; one line for one that has no exact VGG translation."""
    kind, attributes = node.op_type, _attributes(node)
    where = f"{kind} node {node.name or node.output[0]!r}"
    if kind == "Conv":
        kernel = tensors.get(node.input[1])
        pads = list(attributes.get("pads", [0, 0, 0, 0]))
        strides = list(attributes.get("strides", [1, 1]))
        square = kernel is not None and kernel.ndim == 4 and tuple(kernel.shape[2:]) == (3, 3)
        if not square or pads != [1] * 4 or strides != [1, 1]:
            raise ModelError(f"{where}: only 3x3 stride-1 convolutions padded by 1 (a VGG's) translate exactly")
        if attributes.get("group", 1) != 1 or list(attributes.get("dilations", [1, 1])) != [1, 1]:
            raise ModelError(f"{where}: a grouped or dilated convolution has no VGG translation")
        bias = tensors.get(node.input[2]) if len(node.input) > 2 else None
        convs.append(Conv(kernel.astype(np.float32, copy=False), bias))
    elif kind == "BatchNormalization":
        gamma, beta, mean, variance = (tensors[name] for name in node.input[1:5])
        norm = Norm(gamma, beta, mean, variance, float(attributes.get("epsilon", 1e-5)))
        if dense and not layout["between"] and dense[-1].norm is None:
            dense[-1].norm = norm  # a BatchNorm1d directly after a dense layer: folded into it
        elif convs and not dense:
            convs[-1].norm = norm
        else:
            raise ModelError(
                f"{where}: a normalization that does not directly follow a convolution or a dense layer has no "
                "exact translation"
            )
    elif kind == "MaxPool":
        if list(attributes.get("kernel_shape", [])) != [2, 2] or list(attributes.get("strides", [])) != [2, 2]:
            raise ModelError(f"{where}: only 2x2 max-pools of stride 2 (a VGG's) translate exactly")
        if not convs:
            raise ModelError(f"{where}: a pool before any convolution")
        convs[-1].pool_after = True
    elif kind == "AveragePool" and list(attributes.get("kernel_shape", [])) == [1, 1]:
        pass  # torchvision's AdaptiveAvgPool2d((7, 7)) at 224 pixels: the identity
    elif _global_average(kind, attributes, tensors, node, layout):
        if not convs or dense or layout["pool"] == "average":
            raise ModelError(f"{where}: a global average pool only translates between the features and the classifier")
        layout["pool"] = "average"
    elif kind in ("Gemm", "MatMul"):
        dense.append(_dense(node, tensors, attributes, where))
    elif kind == "Add" and dense and dense[-1].bias is None:  # MatMul + Add: the bias
        dense[-1].bias = next((tensors[name] for name in node.input if name in tensors), None)
    elif kind not in SKIPPED:
        raise ModelError(f"{where}: a {kind} operator has no exact translation into vggedge's VGG yet")


def _global_average(kind: str, attributes: dict, tensors: dict, node, layout: dict) -> bool:  # noqa: ANN001
    """A mean over the whole feature map: ``GlobalAveragePool`` (torch's ``AdaptiveAvgPool2d(1)``) or ``ReduceMean``
    over its two spatial axes (``x.mean((2, 3))``; a TensorFlow export's NHWC axes 1 and 2)."""
    if kind == "GlobalAveragePool":
        return True
    if kind != "ReduceMean":
        return False
    axes = attributes.get("axes")
    if axes is None and len(node.input) > 1:  # opset 18 and newer: the axes are an input
        axes = tensors.get(node.input[1])
    spatial = [1, 2] if layout["input"] == "NHWC" and layout["flatten"] == "hwc" else [2, 3]
    if axes is None or sorted(int(a) % 4 for a in np.ravel(axes)) != spatial:
        where = node.name or node.output[0]
        raise ModelError(f"ReduceMean node {where!r}: only a mean over the whole feature map translates")
    return True


def _dense(node, tensors: dict, attributes: dict, where: str) -> Dense:  # noqa: ANN001
    weight = tensors.get(node.input[1])
    if weight is None or weight.ndim != 2:
        raise ModelError(f"{where}: its weight is not a constant matrix")
    if node.op_type == "MatMul" or not attributes.get("transB", 0):
        weight = weight.T  # [in, out] -> [out, in]
    bias = tensors.get(node.input[2]) if node.op_type == "Gemm" and len(node.input) > 2 else None
    return Dense(weight.astype(np.float32, copy=False), bias)


def nchw_graph(weights: VGGWeights):  # noqa: ANN201 - onnx.ModelProto
    """``weights`` as PyTorch would export them: NCHW input ``input`` (already preprocessed, as the source expects),
    Conv/[BatchNormalization]/Relu, MaxPool, [GlobalAveragePool], a channels-first Flatten, Gemm(transB=1)
    [BatchNormalization] with Relu between, and the
    output activation vggedge's model ends in (softmax, or sigmoid for one unit), so both give class scores."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers, current = [], [], "input"

    def add(op: str, inputs: list[str], **attributes) -> None:  # noqa: ANN003
        nonlocal current
        output = f"{op.lower()}_{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [output], **attributes))
        current = output

    def constant(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def normalize(norm: Norm | None, prefix: str) -> None:
        """PyTorch's BatchNorm as it exports: its own node (on NCHW or [N, C]), never folded."""
        if norm is not None:
            values = {"weight": norm.gamma, "bias": norm.beta, "mean": norm.mean, "var": norm.variance}
            names = [constant(f"{prefix}.bn.{name}", value) for name, value in values.items()]
            add("BatchNormalization", [current, *names], epsilon=norm.epsilon)

    for index, conv in enumerate(weights.convs):
        inputs = [current, constant(f"features.{index}.weight", conv.kernel)]
        inputs += [constant(f"features.{index}.bias", conv.bias)] if conv.bias is not None else []
        add("Conv", inputs, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        normalize(conv.norm, f"features.{index}")
        add("Relu", [current])
        if conv.pool_after:
            add("MaxPool", [current], kernel_shape=[2, 2], strides=[2, 2])
    if weights.pool == "average":
        add("GlobalAveragePool", [current])
    add("Flatten", [current], axis=1)
    for index, layer in enumerate(weights.dense):
        inputs = [current, constant(f"classifier.{index}.weight", layer.weight)]
        inputs += [constant(f"classifier.{index}.bias", layer.bias)] if layer.bias is not None else []
        add("Gemm", inputs, transB=1)
        normalize(layer.norm, f"classifier.{index}")
        if index < len(weights.dense) - 1:
            add("Relu", [current])
    add("Sigmoid" if weights.classes == 1 else "Softmax", [current], **({} if weights.classes == 1 else {"axis": 1}))
    size = weights.input_size()
    graph = helper.make_graph(
        nodes, "vgg",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, size, size])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, [None, weights.classes])],
        initializer=initializers,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="vggedge")
    onnx.checker.check_model(model)
    return model


def run_onnx(model, images: np.ndarray, channels_last: bool = False) -> np.ndarray:  # noqa: ANN001 - proto, bytes, path
    """``model``'s outputs for preprocessed NHWC ``images`` (transposed to NCHW unless the model takes NHWC), by ONNX
    Runtime on the CPU, one image at a time (an export may fix its batch at 1). Weights are not prepacked: a check
    runs a few images, and prepacking would hold a second copy of a full-size fc1."""
    import onnxruntime

    source = model if isinstance(model, bytes) else str(model) if isinstance(model, (str, Path)) else (
        model.SerializeToString()
    )  # fmt: skip
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.disable_prepacking", "1")
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    batch = images if channels_last else images.transpose(0, 3, 1, 2)
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    return np.concatenate([session.run(None, {name: batch[i : i + 1]})[0] for i in range(len(batch))])
