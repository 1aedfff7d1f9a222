"""How a figure is written for people: one function for the terminal, report.md and compare.

A figure that was not measured is ``None`` in the JSON and "—" wherever a person reads it.
No imports beyond the standard library: the device side formats too.
"""

from __future__ import annotations

MISSING = "—"
_UNITS = {
    "pct": lambda v: f"{v * 100:.2f}%",  # a fraction in [0, 1] as percent
    "mb": lambda v: f"{v / 1e6:.2f} MB",  # bytes
    "g": lambda v: f"{v / 1e9:.3f}",  # FLOPs as G
    "ms": lambda v: f"{v:.2f} ms",
    "x": lambda v: f"{v:.2f}×",  # a ratio
}


def fmt(value: object, kind: str = "") -> str:
    """``value`` as text: a named kind (pct, mb, g, ms, x), a format spec (".2f", "+.2f"), or plain."""
    if value is None:
        return MISSING
    if kind in _UNITS:
        return _UNITS[kind](value)
    if kind:
        return format(value, kind)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
