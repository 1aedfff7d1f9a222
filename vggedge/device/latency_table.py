"""The per-piece latency table a device measured (``vggedge bench --profile KIT``), and what it predicts.

NetAdapt's lookup tables for a VGG: a candidate's latency is the sum of its pieces' measured times (each conv
with what follows it, at its input and output widths; the head at the last block's width) plus what the pieces
leave out (the input and output QUANTIZE ops, the interpreter's per-invocation cost, the preprocessing), taken
once from the full-width model measured whole on the same device. Check shapes measured whole beside them say
how well the sum predicts (``checks``: predicted, measured, error).

No TensorFlow here: the device writes the table (:mod:`vggedge.device.profile`), the workstation's search reads
it (``optimize --recipe auto --time-on TABLE.json``). The kit is made by :mod:`vggedge.layer_kit`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from vggedge.errors import UserError

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
    """A measured table: ``entries`` maps :func:`entry_key` to p50 milliseconds; ``residual_ms`` per head."""

    path: Path
    model: dict
    quantization: str
    levels: list[int]
    heads: list[str]
    threads: int
    entries: dict[str, float]
    residual_ms: dict[str, float]
    checks: list[dict]
    environment: dict

    @classmethod
    def load(cls, path: Path) -> LatencyTable:
        """A table file, or one line saying why it is not one."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(
                f"--time-on {path}: no such file (make it on the device with `vggedge bench --profile KIT`)"
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UserError(f"--time-on {path} is not a latency table: {error}") from None
        if not isinstance(data, dict) or data.get("schema") != TABLE_SCHEMA:
            raise UserError(
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
                residual_ms={str(head): float(ms) for head, ms in data["residual_ms"].items()},
                checks=list(data.get("checks", [])),
                environment=dict(data.get("environment", {})),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise UserError(f"--time-on {path}: a latency table with a missing or bad field ({error})") from None

    def require(self, model: dict, quantization: str, threads: int | None) -> None:
        """Refuse, in one line, a table measured for another model, quantization or thread count."""
        if self.model != model:
            theirs = ", ".join(f"{len(b)} convs" for b in self.model.get("blocks", []))
            ours = ", ".join(f"{len(b)} convs" for b in model.get("blocks", []))
            detail = "" if theirs != ours else " (same layout: other layer names, widths, input or head)"
            raise UserError(
                f"--time-on {self.path} was measured for another model (blocks of {theirs} vs this one's {ours}"
                f"{detail}): make a kit of this model with `vggedge kit` and profile it on the device"
            )
        if self.quantization != quantization:
            raise UserError(
                f"--time-on {self.path} times {self.quantization} pieces; the search converts to {quantization}"
            )
        if threads is not None and threads != self.threads:
            raise UserError(
                f"--time-on {self.path} was measured at {self.threads} threads, not --threads {threads}: "
                f"profile again with `vggedge bench --profile KIT --threads {threads}`"
            )

    def covers(self, levels: Sequence[int], head: str) -> bool:
        return all(key in self.entries for key in piece_keys(self.model["blocks"], levels, head)) and (
            head in self.residual_ms
        )

    def predict(self, levels: Sequence[int], head: str) -> float:
        """Milliseconds a shape takes on the device the table was measured on: its pieces' sum plus the residual."""
        keys = piece_keys(self.model["blocks"], levels, head)
        missing = [key for key in keys if key not in self.entries]
        if missing or head not in self.residual_ms:
            raise UserError(
                f"--time-on {self.path} has no entry for {missing[0] if missing else head}: profile a full kit"
            )
        return sum(self.entries[key] for key in keys) + self.residual_ms[head]

    def describe(self) -> str:
        """Where the figures come from, for the report's ``timed_on``."""
        device = self.environment.get("device") or self.environment.get("cpu") or "a device"
        runtime = self.environment.get("runtime", "")
        return f"table {self.path.name} (measured on {device}, {runtime}, {self.threads} threads)"


def assemble(manifest: dict, piece_ms: dict[str, float], whole_ms: dict[str, float]) -> dict:
    """The table's content from the kit's manifest and the measured p50s (keyed by file): entries, the residual per
    head from the full-width wholes, and each check shape's predicted against measured time."""
    entries = {
        entry_key(e["segment"], e["in_level"], e["out_level"]): round(piece_ms[e["file"]], 5)
        for e in manifest["entries"]
    }
    blocks = manifest["model"]["blocks"]
    residual, checks = {}, []
    for whole in manifest["wholes"]:
        if whole["role"] == "reference":
            pieces = sum(entries[key] for key in piece_keys(blocks, whole["levels"], whole["head"]))
            residual[whole["head"]] = round(whole_ms[whole["file"]] - pieces, 5)
    for whole in manifest["wholes"]:
        if whole["role"] == "check" and whole["head"] in residual:
            keys = piece_keys(blocks, whole["levels"], whole["head"])
            predicted = sum(entries[key] for key in keys) + residual[whole["head"]]
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
    return {"entries": entries, "residual_ms": residual, "checks": checks}
