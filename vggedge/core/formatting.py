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
    # A ratio in a table's narrow column: three significant figures, at most two decimals (143× of a tiny model
    # on a fast CPU is "143", not "143.47" cut to "143.…")
    "ratio": lambda v: f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 100 else f"{v:.0f}",
}


def fmt(value: object, kind: str = "") -> str:
    """``value`` as text: a named kind (pct, mb, g, ms, x, ratio), a format spec (".2f", "+.2f"), or plain."""
    if value is None:
        return MISSING
    if kind in _UNITS:
        return _UNITS[kind](value)
    if kind:
        return format(value, kind)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# How much of a name or a user's string is echoed back: enough to recognise it, never a 2 MB wall of text
PRINTABLE_LIMIT = 200


def printable(value: object, limit: int = PRINTABLE_LIMIT) -> str:
    """``value`` as text safe for a terminal or a log line: every control or format character (escape sequences
    such as OSC 52, which sets a terminal's clipboard; newlines that would forge extra output lines; bidi
    overrides) written as a Python escape, and the whole cut to ``limit`` characters with an ellipsis."""
    text = str(value)
    cut = len(text) > limit
    text = text[:limit]
    if not text.isprintable():
        text = "".join(c if c.isprintable() else _escaped(c) for c in text)
    return text + "…" if cut else text


def _escaped(character: str) -> str:
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``1 image``, ``2 images``: a count with its noun agreeing."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
