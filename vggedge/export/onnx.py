"""A VGG-topology Keras classifier written as ONNX layer by layer: ``--formats onnx``'s writer (float32, and int8 as
QDQ from the same calibration images as the TFLite int8), and the full-size benchmark's ONNX Runtime rows.

tf2onnx 1.17 could not export the 138M-parameter VGG16 on the 24 GB benchmark machine (measured 2026-12: from
the SavedModel past 12 GB; from the float32 TFLite past 12 GB in 61 s and 20 GB in 88 s; from the SavedModel with
``--large_model`` 17.8 GB and then a failure on NumPy 2's missing ``np.product``): its graph rewrites copy the
weights many times over. A VGG16 is convolutions, ReLUs, max-pools, a flatten and dense layers, each of which has
an ONNX operator of the same meaning, so writing them directly holds each weight once more than Keras does.

The graph takes what the TFLite models take (raw RGB pixels, NHWC, float32) and gives class scores; every layer
it does not know stops the export with its name, and ``largest_difference`` compares ONNX Runtime's scores with
the Keras model's on the same images before anything is timed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

OPSET = 17
ACTIVATIONS = {"relu": "Relu", "softmax": "Softmax", "sigmoid": "Sigmoid"}
QAT_WRAPPERS = ("QuantizeWrapper", "QuantizeWrapperV2")  # tfmot's: the float layer is .layer


class UnsupportedLayer(ValueError):
    """A layer this writer has no ONNX translation for."""


def kernel_and_bias(layer, wrapper=None) -> list[np.ndarray]:  # noqa: ANN001 - a Conv2D or Dense (in tfmot's wrapper)
    """The layer's kernel and bias (when it has one). Inside tfmot's wrapper the layer's ``kernel`` is the
    fake-quantized tensor: the float variables are the wrapper's, by name."""
    if wrapper is None:
        return layer.get_weights()
    named = {v.name.split("/")[-1].split(":")[0]: v for v in wrapper.weights}
    return [np.asarray(named[name].numpy()) for name in ("kernel", "bias") if name in named]


def keras_to_onnx(model, path: Path, properties: dict[str, str] | None = None) -> None:  # noqa: ANN001
    """Write ``model`` (a VGG-topology Sequential or functional chain, Keras 2 or 3) to ``path`` as ONNX, with
    ``properties`` (class names, resize policy) as its metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from vggedge.models.anatomy import leaf_layers

    nodes, weights = [], []
    current = "pixels"
    count = 0

    def fresh(stem: str) -> str:
        nonlocal count
        count += 1
        return f"{stem}_{count}"

    def emit(op: str, inputs: list[str], name: str | None = None, **attributes) -> str:  # noqa: ANN003
        nonlocal current
        output = fresh(op.lower())
        nodes.append(helper.make_node(op, inputs, [output], name=name or output, **attributes))
        current = output
        return output

    def constant(name: str, value: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    emit("Transpose", [current], perm=[0, 3, 1, 2])  # NHWC pixels -> the NCHW ONNX convolutions expect
    channels_last = False
    for layer, _ in leaf_layers(model):  # nested models (a frozen base) opened up, in order
        wrapper = None
        if type(layer).__name__ in QAT_WRAPPERS:  # an int8-qat model: the float layer inside (its ranges: calibrated)
            wrapper, layer = layer, layer.layer
        kind = type(layer).__name__
        config = layer.get_config()
        if kind in ("InputLayer", "Dropout", "Activation", "QuantizeLayer"):  # an Activation's is applied below
            pass
        elif kind == "Conv2D":
            kernel, *bias = kernel_and_bias(layer, wrapper)
            if tuple(config["strides"]) != (1, 1) or tuple(config.get("dilation_rate", (1, 1))) != (1, 1):
                raise UnsupportedLayer(f"{layer.name}: only stride-1, undilated convolutions")
            height, width = kernel.shape[:2]
            pads = [height // 2, width // 2] * 2 if config["padding"] == "same" else [0, 0, 0, 0]
            w = constant(f"{layer.name}/kernel", kernel.transpose(3, 2, 0, 1))  # HWIO -> OIHW
            inputs = [current, w] + ([constant(f"{layer.name}/bias", bias[0])] if bias else [])
            emit("Conv", inputs, name=layer.name, kernel_shape=[height, width], pads=pads)  # named: keep-float
        elif kind == "MaxPooling2D":
            if config["padding"] != "valid":
                raise UnsupportedLayer(f"{layer.name}: only valid max-pooling")
            emit("MaxPool", [current], kernel_shape=list(config["pool_size"]), strides=list(config["strides"]))
        elif kind == "GlobalAveragePooling2D":
            emit("GlobalAveragePool", [current])
            emit("Flatten", [current], axis=1)
        elif kind == "Flatten":
            if not channels_last:  # Keras flattens NHWC: the dense kernel's rows are in (H, W, C) order
                emit("Transpose", [current], perm=[0, 2, 3, 1])
                channels_last = True
            emit("Flatten", [current], axis=1)
        elif kind == "Dense":
            kernel, *bias = kernel_and_bias(layer, wrapper)
            inputs = [current, constant(f"{layer.name}/kernel", kernel)]
            inputs += [constant(f"{layer.name}/bias", bias[0])] if bias else []
            emit("Gemm", inputs, name=layer.name)
        elif kind == "Rescaling":
            emit("Mul", [current, constant(f"{layer.name}/scale", np.float32(config["scale"]))])
            emit("Add", [current, constant(f"{layer.name}/offset", np.float32(config["offset"]))])
        elif kind == "BatchNormalization":  # inference: the moving statistics; the channel axis is 1 in NCHW and NC
            values = layer.get_weights()
            channels = values[-1].shape[0]
            gamma = values.pop(0) if config["scale"] else np.ones(channels)
            beta = values.pop(0) if config["center"] else np.zeros(channels)
            statistics = zip(("gamma", "beta", "mean", "variance"), (gamma, beta, *values), strict=True)
            inputs = [current] + [constant(f"{layer.name}/{name}", value) for name, value in statistics]
            emit("BatchNormalization", inputs, epsilon=float(config["epsilon"]))
        elif kind == "ReLU":
            if config.get("max_value") is not None or config.get("negative_slope") or config.get("threshold"):
                raise UnsupportedLayer(f"{layer.name}: only a plain ReLU")
            emit("Relu", [current])
        else:
            raise UnsupportedLayer(f"{layer.name}: no ONNX translation for a {kind} layer")
        activation = config.get("activation", "linear")
        if isinstance(activation, dict):  # tfmot's QuantizeAwareActivation around the layer's own
            activation = activation.get("config", {}).get("activation", activation)
        if activation in ACTIVATIONS:
            emit(ACTIVATIONS[activation], [current], **({"axis": -1} if activation == "softmax" else {}))
        elif activation != "linear":
            raise UnsupportedLayer(f"{layer.name}: activation {activation!r}")

    size = int(model.input_shape[1])
    graph = helper.make_graph(
        nodes,
        "vgg",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, size, size, 3])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, [1, int(model.output_shape[-1])])],
        initializer=weights,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="vggedge")
    helper.set_model_props(onnx_model, properties or {})
    onnx.checker.check_model(onnx_model)  # by proto; the 553 MB VGG16 is under protobuf's 2 GB
    onnx.save(onnx_model, str(path))


def largest_difference(onnx_path: Path, model, images: np.ndarray) -> float:  # noqa: ANN001
    """The largest absolute difference between ONNX Runtime's and Keras' class scores, relative to the largest
    score: 0 up to float rounding when the graph is the model."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    ours = np.concatenate([session.run(None, {name: image[None]})[0] for image in images])
    theirs = np.asarray(model(images, training=False))
    return float(np.abs(ours - theirs).max() / max(float(np.abs(theirs).max()), 1e-30))


def quantize_onnx(source: Path, target: Path, calibration: np.ndarray, float_layers: tuple[str, ...] = ()) -> None:
    """``source`` as full int8 in QDQ form (ONNX Runtime's static quantization): int8 weights per output channel,
    int8 activations with ranges from ``calibration`` (the images the TFLite int8 was calibrated on, raw pixels),
    the input and output kept float32, so the file takes and gives what the float one does. Its metadata kept.
    ``float_layers`` (Keras layer names: the TFLite file's keep-float layers) stay float: their Conv or Gemm node,
    named after the layer by :func:`keras_to_onnx`, is left out of the quantization.

    Weights use 7 of their 8 bits (``reduce_range``): x86 CPUs without VNNI (AVX2 edge boxes, this kind of EPYC)
    multiply uint8 by int8 in pairs summed in 16 bits, which full-range weights saturate (the measurement is in
    docs/guides/formats.md)."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{name: image[None].astype(np.float32)} for image in calibration])

        def get_next(self) -> dict | None:
            return next(self.items, None)

    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process (shape inference) is for dynamic graphs
    try:
        quantize_static(
            str(source), str(target), Images(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, reduce_range=True,
            nodes_to_exclude=list(float_layers),  # node names; a name the graph lacks matches nothing
        )  # fmt: skip
    finally:
        logging.getLogger().setLevel(quiet)
    quantized, properties = onnx.load(str(target)), {p.key: p.value for p in onnx.load(str(source)).metadata_props}
    if properties and not quantized.metadata_props:
        onnx.helper.set_model_props(quantized, properties)
        onnx.save(quantized, str(target))
