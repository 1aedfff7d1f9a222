"""vggedge: make VGG16 small and fast for edge devices.

``from vggedge import Classifier`` is the application API (``vggedge.device.classifier``); it is imported
on first use, so ``import vggedge`` stays instant and never pulls in TensorFlow or an interpreter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vggedge.device.classifier import Classifier

__all__ = ["Classifier"]


def __getattr__(name: str) -> object:
    if name == "Classifier":
        from vggedge.device.classifier import Classifier

        return Classifier
    raise AttributeError(f"module 'vggedge' has no attribute {name!r}")
