"""Per-layer int8 error, keyed to the Keras model's own layers: which layer broke when int8 collapses.

TensorFlow's answer to "int8 lost 50 points" is a debugger whose tensor names do not map back to Keras
layers. Here every conv and dense op of an integer TFLite model is matched to the Keras layer it came
from, and its output is compared with float32 on a few images, two ways:

- **accumulated**: the int8 output against the float model's output of the same layer (what the
  layer's consumers see: the error of every layer before it included);
- **own**: the int8 output against the float layers applied to the int8 model's *own* input of that op
  (dequantized). This isolates what the layer itself adds — its weights' and output's rounding — so the
  layer that breaks a model is the one named, not every layer after it.

Figures per layer: ``rmse_in_scales`` (own error in units of the output's quantization step; pure
rounding is 1/sqrt(12) ≈ 0.29), ``sqnr_db`` (accumulated signal-to-quantization-noise ratio),
``own_sqnr_db`` (the median over output channels of each channel's own SQNR: a shared activation scale
that one huge channel stretches rounds every other channel to zero, which a whole-tensor figure hides),
``channel_sqnr_db`` (the same median, accumulated: a layer after one below 10 dB is marked ``after_broken``,
its own figure says nothing about it),
``range`` of the float output and ``median_channel_share`` (the median channel's range as a share of the
tensor's range: about 1 when channels are alike, near 0 when one channel takes the whole int8 range —
the imbalance cross-layer equalization removes). Rows are ranked worst first: the layers that break on a
sound input (``weak``), then the rest by ``own_sqnr_db``.

Matching: TFLite names an op's output after the graph locations it fused, ``;``-joined
(``vgg16_bn/re_lu_3/Relu;vgg16_bn/conv2d_3/Conv2D``); their ``/`` segments are matched to the Keras layer
names of the flat chain. The op stands for the conv/dense layer among them (the user's layer) and is
compared with the output of the last matched layer in chain order (the fused normalization or ReLU).
An output layer whose activation the converter kept as its own op (softmax, sigmoid) is compared before
that activation. Ops no name matches fall back to order and shape.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from vggedge.backend.keras_env import keras, tf
from vggedge.export.convert import fused_locations
from vggedge.models.anatomy import chain_layers, find_anatomy
from vggedge.models.flops import count_macs

ERROR_IMAGES = 8  # evaluation images the table is measured on: enough for stable medians on small inputs
# Above this many MACs per image (the full VGG16 is 15.5G) two images: each holds ~50,000 positions per channel,
# and the table (two float passes layer by layer and one int8 pass without XNNPACK per image) stays a few seconds.
LARGE_MODEL_MACS = 1e9
LARGE_MODEL_IMAGES = 2
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
WEIGHTED_LAYERS = (keras.layers.Conv2D, keras.layers.Dense)
HEALTHY_RMSE_IN_SCALES = 1 / math.sqrt(12)  # uniform rounding: the floor of any int8 tensor's error
# A layer whose own SQNR is below this loses more than a tenth of its signal to rounding (int8 rounding
# alone is ~40 dB on a well-scaled tensor): flagged in the table.
WEAK_SQNR_DB = 10.0


@dataclasses.dataclass
class LayerError:
    """One conv/dense layer's int8 error (figures rounded for the report)."""

    layer: str  # the Keras layer's name
    part: str  # where it sits in the anatomy: block3, head, output
    op: str  # the TFLite op it became
    rmse_in_scales: float
    sqnr_db: float | None
    own_sqnr_db: float | None
    channel_sqnr_db: float | None  # accumulated, the median channel's: what the next layer gets to work with
    range: tuple[float, float]
    median_channel_share: float | None
    matched_by: str  # "name" or "order"
    input_sqnr_db: float | None = None  # channel_sqnr_db of the layer before it (None: the first layer)

    @property
    def label(self) -> str:
        return f"{self.part} · {self.layer}"

    @property
    def after_broken(self) -> bool:
        """Its input is already broken: its own figure says nothing about the layer itself."""
        return self.input_sqnr_db is not None and self.input_sqnr_db < WEAK_SQNR_DB

    @property
    def weak(self) -> bool:
        """The layer itself loses its signal to int8 rounding, on an input that was still sound."""
        return self.own_sqnr_db is not None and self.own_sqnr_db < WEAK_SQNR_DB and not self.after_broken

    def to_dict(self) -> dict:
        return {
            **dataclasses.asdict(self),
            "range": list(self.range),
            "weak": self.weak,
            "after_broken": self.after_broken,
        }


@dataclasses.dataclass
class _Accumulator:
    """Sums over images for one layer: error and signal per channel, own and accumulated, and ranges."""

    own_error: np.ndarray | None = None
    own_signal: np.ndarray | None = None
    acc_error: np.ndarray | float = 0.0  # per channel
    acc_signal: np.ndarray | float = 0.0
    own_squared_in_scales: float = 0.0
    count: int = 0
    channel_min: np.ndarray | None = None
    channel_max: np.ndarray | None = None

    def add(self, quantized: np.ndarray, own_reference: np.ndarray, reference: np.ndarray, scale: float) -> None:
        channels = quantized.shape[-1]
        q, own, ref = (a.reshape(-1, channels).astype(np.float64) for a in (quantized, own_reference, reference))
        own_error = ((q - own) ** 2).sum(axis=0)
        own_signal = (own**2).sum(axis=0)
        self.own_error = own_error if self.own_error is None else self.own_error + own_error
        self.own_signal = own_signal if self.own_signal is None else self.own_signal + own_signal
        self.acc_error = self.acc_error + ((q - ref) ** 2).sum(axis=0)
        self.acc_signal = self.acc_signal + (ref**2).sum(axis=0)
        self.own_squared_in_scales += float(own_error.sum()) / (scale * scale)
        self.count += q.size
        low, high = ref.min(axis=0), ref.max(axis=0)
        self.channel_min = low if self.channel_min is None else np.minimum(self.channel_min, low)
        self.channel_max = high if self.channel_max is None else np.maximum(self.channel_max, high)

    def figures(self) -> dict:
        channel_ranges = self.channel_max - self.channel_min
        low, high = float(self.channel_min.min()), float(self.channel_max.max())
        live = self.own_signal > 0
        own_sqnr = float(np.median(_db(self.own_signal[live], self.own_error[live]))) if live.any() else None
        reaching = self.acc_signal > 0
        channel_sqnr = (
            float(np.median(_db(self.acc_signal[reaching], self.acc_error[reaching]))) if reaching.any() else None
        )
        return {
            "rmse_in_scales": round(math.sqrt(self.own_squared_in_scales / max(self.count, 1)), 3),
            "sqnr_db": _rounded(_db(float(np.sum(self.acc_signal)), float(np.sum(self.acc_error)))),
            "channel_sqnr_db": _rounded(channel_sqnr),
            "own_sqnr_db": _rounded(own_sqnr),
            "range": (round(low, 4), round(high, 4)),
            "median_channel_share": round(float(np.median(channel_ranges)) / (high - low), 4) if high > low else None,
        }


def _db(signal, error):  # noqa: ANN001, ANN202 - scalars or arrays alike
    return 10 * np.log10(np.maximum(signal, 1e-30) / np.maximum(error, 1e-30))


def _rounded(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 2)


def layer_errors(
    model: keras.Model, flatbuffer: bytes, images: np.ndarray, count: int | None = None
) -> list[LayerError]:
    """The int8 error of every conv and dense layer of ``model`` in ``flatbuffer`` (its integer TFLite
    conversion), measured on the first ``count`` of ``images`` (raw uint8 pixels; default by the model's
    size); worst first: the layers that break on a sound input, then the rest by their own SQNR."""
    if count is None:
        count = LARGE_MODEL_IMAGES if count_macs(model) > LARGE_MODEL_MACS else ERROR_IMAGES
    model, aliases = float_view(model)
    chain = [None, *chain_layers(model)]  # index 0: the pixels
    index_of = {layer.name: i for i, layer in enumerate(chain) if layer is not None}
    index_of.update({alias: index_of[name] for alias, name in aliases.items()})
    part_of = _parts(model)
    interpreter = tf.lite.Interpreter(
        model_content=flatbuffer,
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    ops = _matched_ops(interpreter, chain, index_of)
    accumulators = {op.output: _Accumulator() for op in ops}
    input_detail = interpreter.get_input_details()[0]
    for pixels in images[:count]:
        interpreter.set_tensor(input_detail["index"], _as_input(pixels, input_detail))
        interpreter.invoke()
        float_outputs = _float_outputs(chain, pixels)
        for op in ops:
            quantized, scale = _dequantized(interpreter, op.output)
            own_input, _ = _dequantized(interpreter, op.input)
            own_reference = _apply(chain, op.input_layer + 1, op.layer_index, own_input, op.pre_activation)
            reference = (
                _apply(chain, op.layer_index, op.layer_index, float_outputs[op.layer_index - 1], True)
                if op.pre_activation
                else float_outputs[op.layer_index]
            )
            accumulators[op.output].add(
                quantized, own_reference.reshape(quantized.shape), reference.reshape(quantized.shape), scale
            )
    rows, before = [], None
    for op in ops:  # graph order: each layer's input health is the median-channel SQNR of the one before it
        figures = accumulators[op.output].figures()
        rows.append(
            LayerError(
                layer=op.name,
                part=part_of.get(op.name, "?"),
                op=op.kind,
                matched_by=op.matched_by,
                input_sqnr_db=before,
                **figures,
            )
        )
        before = figures["channel_sqnr_db"]
    order = {id(row): i for i, row in enumerate(rows)}
    return sorted(rows, key=lambda row: (not row.weak, _or_inf(row.own_sqnr_db), order[id(row)]))


def float_view(model: keras.Model) -> tuple[keras.Model, dict[str, str]]:
    """``model`` itself, or for a quantization-aware model (tfmot's QuantizeWrapperV2 around each conv and dense
    layer, a QuantizeLayer before the first) the same chain in plain float layers with its trained weights, and
    {wrapper name: layer name} (the TFLite ops are named after the wrappers, the rows after the user's layers).
    The int8 model is then measured against what the fine-tuned weights compute in float, not against the fake
    quantization that trained them."""
    # tfmot's clone may leave an unwrapped layer (the Rescaling) with a second call node: listed, not walked
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    kinds = {type(layer).__name__ for layer in layers}
    if not kinds & {"QuantizeWrapper", "QuantizeWrapperV2"}:
        return model, {}
    plain, aliases = [], {}
    for layer in layers:
        kind = type(layer).__name__
        if kind == "QuantizeLayer":
            continue  # the input's fake quantization: an identity in float
        if kind in ("QuantizeWrapper", "QuantizeWrapperV2"):
            inner = layer.layer
            config = inner.get_config()
            activation = getattr(inner, "activation", None)
            if activation is not None:  # tfmot swapped it for a QuantizeAwareActivation that holds the original
                config["activation"] = keras.activations.serialize(getattr(activation, "activation", activation))
            aliases[layer.name] = inner.name
            plain.append((type(inner).from_config(config), layer))
        else:  # rebuilt too: a layer shared with a second model would count as a layer applied twice
            plain.append((type(layer).from_config(layer.get_config()), layer))
    view = keras.Sequential([keras.Input(model.input_shape[1:]), *(rebuilt for rebuilt, _ in plain)], name=model.name)
    for rebuilt, source in plain:
        # By variable name: a wrapper holds the layer's kernel and bias beside its quantizers' ranges, and the
        # wrapped layer itself no longer lists all of them.
        held = {variable.name.split(":")[0]: variable for variable in source.weights}
        rebuilt.set_weights([held[variable.name.split(":")[0]].numpy() for variable in rebuilt.weights])
    return view, aliases


def _or_inf(value: float | None) -> float:
    return math.inf if value is None else value


@dataclasses.dataclass(frozen=True)
class _Op:
    kind: str
    input: int  # tensor indices
    output: int
    name: str  # the conv/dense Keras layer it stands for
    layer_index: int  # chain index of the last layer it fused (its output is compared)
    input_layer: int  # chain index of the layer whose output its input tensor is
    pre_activation: bool  # the last layer's activation is a separate op: compare before it
    matched_by: str


def _matched_ops(interpreter: tf.lite.Interpreter, chain: Sequence, index_of: dict[str, int]) -> list[_Op]:
    details = interpreter._get_ops_details()
    tensor_layer: dict[int, int] = {int(detail["index"]): 0 for detail in interpreter.get_input_details()}
    weighted_layers = [i for i, layer in enumerate(chain) if isinstance(layer, WEIGHTED_LAYERS)]
    ops: list[_Op] = []
    for detail in details:
        if detail["op_name"] == "DELEGATE" or not len(detail["outputs"]):
            continue
        inputs = [int(i) for i in detail["inputs"] if i >= 0]
        output = int(detail["outputs"][0])
        name = interpreter._get_tensor_details(output, 0)["name"]
        matched = sorted(index_of[segment] for segment in fused_locations(name) if segment in index_of)
        source = next((tensor_layer[i] for i in inputs if i in tensor_layer), None)
        if matched:
            tensor_layer[output] = matched[-1]
        elif source is not None and detail["op_name"] not in WEIGHTED_OPS:
            tensor_layer[output] = source  # QUANTIZE, DEQUANTIZE and the like carry their input's layer
        if detail["op_name"] not in WEIGHTED_OPS or source is None:
            continue
        weighted = [i for i in matched if i in weighted_layers]
        matched_by = "name"
        if not weighted:  # no name to go by: the next conv/dense layer after the op's input
            following = [i for i in weighted_layers if i > source]
            if not following:
                continue
            weighted, matched, matched_by = [following[0]], [following[0]], "order"
            tensor_layer[output] = following[0]
        last = matched[-1]
        layer = chain[last]
        activation = getattr(layer, "activation", None)
        activation_name = getattr(activation, "__name__", "linear")
        fused = any(
            s.split("/")[-1].lower().startswith(activation_name.lower()) for s in name.split(";") if layer.name in s
        )
        pre_activation = isinstance(layer, WEIGHTED_LAYERS) and activation_name != "linear" and not fused
        ops.append(
            _Op(
                kind=detail["op_name"],
                input=next(i for i in inputs if i in tensor_layer),
                output=output,
                name=chain[weighted[0]].name,
                layer_index=last,
                input_layer=source,
                pre_activation=pre_activation,
                matched_by=matched_by,
            )
        )
    return ops


def _parts(model: keras.Model) -> dict[str, str]:
    """Layer name -> its place in the anatomy (block1..N, head, output)."""
    anatomy = find_anatomy(model)
    parts = {name: f"block{i}" for i, block in enumerate(anatomy.blocks, start=1) for name in block}
    parts.update({name: "head" for name in anatomy.hidden})
    parts[anatomy.output] = "output"
    return parts


def _as_input(pixels: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer):
        scale, zero = detail["quantization"]
        if scale and dtype != np.uint8:
            pixels = np.round(pixels.astype(np.float32) / scale + zero)
        return np.clip(pixels, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)[None]
    return pixels.astype(np.float32)[None]


def _dequantized(interpreter: tf.lite.Interpreter, index: int) -> tuple[np.ndarray, float]:
    detail = interpreter._get_tensor_details(index, 0)
    raw = interpreter.get_tensor(index, 0)
    scale, zero = detail["quantization"]
    if not scale:
        return raw.astype(np.float32), 1.0
    return (raw.astype(np.float32) - zero) * scale, float(scale)


def _float_outputs(chain: Sequence, pixels: np.ndarray) -> list[np.ndarray]:
    """Every chain layer's float32 output on one image (index 0: the pixels themselves)."""
    x = tf.convert_to_tensor(pixels[None].astype(np.float32))
    outputs = [x.numpy()]
    for layer in chain[1:]:
        x = layer(x, training=False)
        outputs.append(x.numpy())
    return outputs


def _apply(chain: Sequence, first: int, last: int, x: np.ndarray, pre_activation: bool) -> np.ndarray:
    """Layers ``first..last`` of the chain applied to ``x`` in float32; the last one without its activation
    when ``pre_activation``."""
    value = tf.convert_to_tensor(x.astype(np.float32))
    for i in range(first, last + 1):
        layer = chain[i]
        if i == last and pre_activation:
            value = output_before_activation(layer, value)
        else:
            value = layer(value, training=False)
    return value.numpy()


def output_before_activation(layer: keras.layers.Layer, x: tf.Tensor) -> tf.Tensor:
    """A conv/dense layer's output before its activation (int8-qat sets its quantizers' ranges from it too)."""
    original = layer.activation
    layer.activation = keras.activations.linear
    try:
        return layer(x, training=False)
    finally:
        layer.activation = original


def summary_lines(rows: Sequence[LayerError], limit: int = 3) -> list[str]:
    """The worst layers, one line each, for the terminal and the report's notes."""
    return [
        f"{row.label}: own SQNR {row.own_sqnr_db} dB, {row.rmse_in_scales} output steps RMS, "
        f"median channel {row.median_channel_share} of the range"
        for row in list(rows)[:limit]
    ]
