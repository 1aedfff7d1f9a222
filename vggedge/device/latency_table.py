"""The per-piece latency table a device measured (``vggedge bench --profile KIT``), and what it predicts.

NetAdapt's lookup tables for a VGG: a candidate's latency is the sum of its pieces' measured times (each conv
with what follows it, at its input and output widths; the head at the last block's width) plus what the sum
leaves out, the *residual*: the input and output QUANTIZE ops, the preprocessing, the interpreter's per-call
cost counted once per piece instead of once, and above all the memory hierarchy. A piece invoked again and
again alone finds its weights in cache; inside the whole model every layer's weights come in again on each
call. On the sample at 2 threads (an AMX Xeon), the full-width GAP model took 0.54 ms against its pieces' 0.32,
every block at half its filters 0.168 against 0.140, and at 1/8 0.083 against 0.083: a constant residual
(the full-width model's) predicted the half-width one 115% too slow. So the residual is measured on the
uniform shapes (every block at one level, each head) and taken for another shape at its weight count, linearly
between the two uniform shapes around it. Mixed shapes measured whole beside them say how well that predicts
(``checks``: predicted, measured, error).

No TensorFlow here: the device writes the table (:mod:`vggedge.device.profile`), the workstation's search reads
it (``optimize --recipe auto --time-on TABLE.json``). The kit is made by :mod:`vggedge.auto.kit`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from vggedge.core.errors import DeviceError

KIT_SCHEMA = "vggedge.layer-kit/1"
TABLE_SCHEMA = "vggedge.latency-table/1"


def head_segment(head: str) -> str:
    return f"head:{head}"


def entry_key(segment: str, in_level: int | None, out_level: int | None) -> str:
    return f"{segment}|{in_level}|{out_level}"


def piece_keys(blocks: Sequence[Sequence[Sequence]], levels: Sequence[int], head: str) -> list[str]:
    """The table entries a shape is made of: per conv (input level, own level), then the head."""
    keys, previous = [], None
    for block, layers in enumerate(blocks):
        for name, _ in layers:
            keys.append(entry_key(name, previous, levels[block]))
            previous = levels[block]
    keys.append(entry_key(head_segment(head), levels[-1], None))
    return keys


@dataclasses.dataclass
class LatencyTable:
    """A measured table: ``entries`` maps :func:`entry_key` to p50 milliseconds and ``weights`` to the piece's kernel
    weights; ``residual`` per head: (weights of a uniform shape, whole model's time minus its pieces') points."""

    path: Path
    model: dict
    quantization: str
    levels: list[int]
    heads: list[str]
    threads: int
    entries: dict[str, float]
    weights: dict[str, int]
    residual: dict[str, list[tuple[float, float]]]
    checks: list[dict]
    environment: dict
    warnings: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> LatencyTable:
        """A table file, or one line saying why it is not one."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise DeviceError(
                f"--time-on {path}: no such file (make it on the device with `vggedge bench --profile KIT`)"
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DeviceError(f"--time-on {path} is not a latency table: {error}") from None
        if not isinstance(data, dict) or data.get("schema") != TABLE_SCHEMA:
            raise DeviceError(
                f"--time-on {path} is not a latency table ({TABLE_SCHEMA}): `vggedge bench --profile KIT` writes one"
            )
        try:
            return cls(
                path=path,
                model=data["model"],
                quantization=str(data["quantization"]),
                levels=[int(level) for level in data["levels"]],
                heads=[str(head) for head in data["heads"]],
                threads=int(data["threads"]),
                entries={str(key): float(ms) for key, ms in data["entries"].items()},
                weights={str(key): int(count) for key, count in data["weights"].items()},
                residual={
                    str(head): sorted((float(w), float(ms)) for w, ms in points)
                    for head, points in data["residual"].items()
                },
                checks=list(data.get("checks", [])),
                environment=dict(data.get("environment", {})),
                warnings=[str(w) for w in data.get("warnings", [])],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise DeviceError(f"--time-on {path}: a latency table with a missing or bad field ({error})") from None

    def require(self, model: dict, quantization: str, threads: int | None) -> None:
        """Refuse, in one line, a table measured for another model, quantization or thread count."""
        if self.model != model:
            theirs = ", ".join(f"{len(b)} convs" for b in self.model.get("blocks", []))
            ours = ", ".join(f"{len(b)} convs" for b in model.get("blocks", []))
            detail = "" if theirs != ours else " (same layout: other layer names, widths, input or head)"
            raise DeviceError(
                f"--time-on {self.path} was measured for another model (blocks of {theirs} vs this one's {ours}"
                f"{detail}): make a kit of this model with `vggedge kit` and profile it on the device"
            )
        if self.quantization != quantization:
            raise DeviceError(
                f"--time-on {self.path} times {self.quantization} pieces; the search converts to {quantization}"
            )
        if threads is not None and threads != self.threads:
            raise DeviceError(
                f"--time-on {self.path} was measured at {self.threads} threads, not --threads {threads}: "
                f"profile again with `vggedge bench --profile KIT --threads {threads}`"
            )

    def predict(self, levels: Sequence[int], head: str) -> float:
        """Milliseconds a shape takes on the device the table was measured on: its pieces' sum plus the residual at
        its weight count."""
        keys = piece_keys(self.model["blocks"], levels, head)
        missing = [key for key in keys if key not in self.entries]
        if missing or not self.residual.get(head):
            raise DeviceError(
                f"--time-on {self.path} has no entry for {missing[0] if missing else head}: profile a full kit"
            )
        weights = sum(self.weights[key] for key in keys)
        return sum(self.entries[key] for key in keys) + residual_at(self.residual[head], weights)

    def describe(self) -> str:
        """Where the figures come from, for the report's ``timed_on``."""
        device = self.environment.get("device") or self.environment.get("cpu") or "a device"
        runtime = self.environment.get("runtime", "")
        return f"table {self.path.name} (measured on {device}, {runtime}, {self.threads} threads)"


def residual_at(points: Sequence[tuple[float, float]], weights: float) -> float:
    """The residual at ``weights``: linear between the two measured points around it, the nearest end's beyond them."""
    if weights <= points[0][0]:
        return points[0][1]
    for (w0, r0), (w1, r1) in zip(points, points[1:], strict=False):
        if weights <= w1:
            return r0 + (r1 - r0) * (weights - w0) / max(w1 - w0, 1e-9)
    return points[-1][1]


def assemble(manifest: dict, piece_ms: dict[str, float], whole_ms: dict[str, float]) -> dict:
    """The table's content from the kit's manifest and the measured p50s (keyed by file): entries and their weights,
    the residual points per head from the uniform ("calibration") wholes, each check shape's predicted against
    measured time."""
    entries, weights = {}, {}
    for e in manifest["entries"]:
        key = entry_key(e["segment"], e["in_level"], e["out_level"])
        entries[key], weights[key] = round(piece_ms[e["file"]], 5), int(e["weights"])
    blocks = manifest["model"]["blocks"]
    residual: dict[str, list[tuple[int, float]]] = {}
    checks = []
    for whole in manifest["wholes"]:
        if whole["role"] == "calibration":
            keys = piece_keys(blocks, whole["levels"], whole["head"])
            pieces = sum(entries[key] for key in keys)
            point = (sum(weights[key] for key in keys), round(whole_ms[whole["file"]] - pieces, 5))
            residual.setdefault(whole["head"], []).append(point)
    residual = {head: sorted(points) for head, points in residual.items()}
    for whole in manifest["wholes"]:
        if whole["role"] == "check" and whole["head"] in residual:
            keys = piece_keys(blocks, whole["levels"], whole["head"])
            shape_weights = sum(weights[key] for key in keys)
            predicted = sum(entries[key] for key in keys) + residual_at(residual[whole["head"]], shape_weights)
            measured = whole_ms[whole["file"]]
            checks.append(
                {
                    "levels": whole["levels"],
                    "head": whole["head"],
                    "predicted_ms": round(predicted, 4),
                    "measured_ms": round(measured, 4),
                    "error_pct": round(100 * (predicted - measured) / measured, 2),
                }
            )
    return {"entries": entries, "weights": weights, "residual": residual, "checks": checks}
