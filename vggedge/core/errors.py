"""Errors a user can fix, typed by what to fix. The CLI turns each into one line on stderr and exit code 2.

Every kind is a :class:`UserError`, so ``except vggedge.UserError`` catches them all; the kinds let a program
tell bad data from a bad model or recipe without parsing the message.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input: a missing file, a bad recipe value, data that does not fit the model, no network…

    The message names the problem and the fix in one line.
    """


class DataError(UserError):
    """An image folder: missing, empty, unreadable images, classes that do not match the model."""


class ModelError(UserError):
    """A model file or name: not found, not a VGG-topology classifier, weights that cannot be had offline."""


class RecipeError(UserError):
    """A recipe: unknown name, a bad TOML file or value, or a step that cannot apply to this model."""


class OutputError(UserError):
    """An output folder or file that cannot be written."""


class DeviceError(UserError):
    """The device side: no interpreter, a bad TFLite file, a bench server that cannot be reached or refuses."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
