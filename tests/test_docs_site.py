"""The API reference shows Python, not Sphinx markup: roles become code spans, doctest directives are dropped."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def docs_module(name: str):  # noqa: ANN201
    """A module of ``docs/`` (the mkdocs extension and hooks are files there, not a package)."""
    path = Path(__file__).parents[1] / "docs" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"docs_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def extension():  # noqa: ANN201
    pytest.importorskip("griffe")
    return docs_module("griffe_roles")


def test_roles_and_doctest_directives_become_plain_markdown():
    plain = extension().plain
    text = "Returns :class:`~vggedge.core.result.Result` (see :func:`vggedge.api.search`).\n>>> run()  # doctest: +SKIP"
    assert plain(text) == "Returns `Result` (see `vggedge.api.search`).\n>>> run()"


def test_every_included_benchmark_table_is_titled_apart_on_its_page():
    """The performance page includes one table file per machine for several benchmarks: after the hook, no two of its
    section titles are the same, so its table of contents tells the machines apart."""
    import re

    hooks = docs_module("hooks")
    page = (Path(__file__).parents[1] / "docs" / "performance.md").read_text(encoding="utf-8")
    titles = re.findall(r"^#{1,6} (.+)$", hooks.on_page_markdown(page, None), re.MULTILINE)
    repeated = {title for title in titles if titles.count(title) > 1 and title != "Notes per recipe"}
    assert not repeated and len(titles) > 20, repeated
    assert "Full-size VGG16 (224x224, batch 1): every recipe, one run (x86_64-amd-epyc-2cores-avx2)" in titles
