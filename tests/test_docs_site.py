"""The API reference shows Python, not Sphinx markup: roles become code spans, doctest directives are dropped."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def extension():  # noqa: ANN201
    pytest.importorskip("griffe")
    path = Path(__file__).parents[1] / "docs" / "griffe_roles.py"
    spec = importlib.util.spec_from_file_location("griffe_roles", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_roles_and_doctest_directives_become_plain_markdown():
    plain = extension().plain
    text = "Returns :class:`~vggedge.core.result.Result` (see :func:`vggedge.api.search`).\n>>> run()  # doctest: +SKIP"
    assert plain(text) == "Returns `Result` (see `vggedge.api.search`).\n>>> run()"
