"""The grammar of layer selectors (a recipe step's ``layers``), parsed without a model or TensorFlow.

Recipe files are validated when they are read, before any model is loaded, so a typo in a
selector fails at once with the file and key. What a selector picks in a given model is decided
by :meth:`vggedge.models.anatomy.Anatomy.select`.

- ``conv``: every convolution; ``block2-5`` / ``block3``: the convolutions of those blocks (from 1)
- ``dense``: the hidden dense layers of the head (not the output); ``head``: hidden + output
- ``all``: every convolution and dense layer
- ``name:REGEX``: layers whose Keras name fully matches REGEX (the explicit, name-based way)
"""

from __future__ import annotations

import dataclasses
import re

SELECTOR_HELP = "conv, block2-5, block3, dense, head, all, or name:REGEX"
GROUPS = ("conv", "dense", "head", "all")


@dataclasses.dataclass(frozen=True)
class Selector:
    kind: str  # one of GROUPS, "blocks" or "name"
    first_block: int = 0
    last_block: int = 0
    pattern: re.Pattern | None = None


def parse_selector(text: str) -> Selector:
    """Parse ``text``; ValueError with the accepted forms when it is none of them."""
    text = text.strip()
    if text in GROUPS:
        return Selector(text)
    blocks = re.fullmatch(r"block(\d+)(?:-(\d+))?", text)
    if blocks:
        first, last = int(blocks.group(1)), int(blocks.group(2) or blocks.group(1))
        if first < 1 or last < first:
            raise ValueError(f"blocks are numbered from 1 and the first comes first: {text!r}")
        return Selector("blocks", first, last)
    if text.startswith("name:"):
        try:
            return Selector("name", pattern=re.compile(text[len("name:") :]))
        except re.error as error:
            raise ValueError(f"{text!r} is not a regular expression after 'name:' ({error})") from None
    raise ValueError(f"{text!r} is not a layer selector; use {SELECTOR_HELP}")


def split_selectors(text: str) -> list[str]:
    """A comma-separated list of selectors (``block3,head``), each stripped; parse each with :func:`parse_selector`."""
    return [part.strip() for part in text.split(",")]


def migrate_v1_selector(text: str) -> str:
    """A ``vggedge.recipe/1`` ``layers`` value in today's grammar: groups kept, a regular expression named."""
    return text if text in ("dense", "conv", "all") else f"name:{text}"
