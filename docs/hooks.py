"""mkdocs hooks: the CLI reference page is made from the Typer app at build time (vggedge.cli.reference), and a
committed benchmark table included into a page has its headings put under the page's section (each table file
opens with its own "# " title: the performance page had 24 first-level headings and a table of contents of one), its
title naming the machine its file is named for (three full-size tables read alike in the table of contents)."""

from __future__ import annotations

import re
from pathlib import Path

MARKER = "<!-- cli-reference -->"
KEYWORDS = re.compile(r"^<!-- keywords: (\w+) -->$", re.MULTILINE)
INCLUDE = re.compile(r'^--8<-- "(reports/benchmarks/[^"]+\.md)"$', re.MULTILINE)
ROOT = Path(__file__).parents[1]
MACHINE = re.compile(r"(?:x86[_-]64|aarch64|arm64)-.+$")  # a benchmark file's name ends in the machine it ran on


def demoted(text: str, levels: int = 2) -> str:
    """``text`` with every Markdown heading outside fenced code ``levels`` deeper."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        lines.append("#" * levels + line if not fenced and re.match(r"#{1,4} ", line) else line)
    return "\n".join(lines)


def titled(path: str) -> str:
    """The included table file with the machine from its name (``...-x86_64-amd-epyc-2cores-avx2.md``) added to its
    title, unless the title names it already."""
    text = (ROOT / path).read_text(encoding="utf-8")
    machine = MACHINE.search(Path(path).stem)
    if machine is None:
        return text
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("# "):
            if machine.group(0) not in line:
                lines[index] = f"{line} ({machine.group(0)})"
            break
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, **kwargs) -> str:  # noqa: ANN001, ANN003 - the mkdocs hook signature
    markdown = INCLUDE.sub(lambda match: demoted(titled(match.group(1))), markdown)
    if KEYWORDS.search(markdown):
        from vggedge.cli.reference import keywords_reference

        markdown = KEYWORDS.sub(lambda match: keywords_reference(match.group(1)), markdown)
    if MARKER not in markdown:
        return markdown
    from vggedge.cli.reference import cli_reference

    return markdown.replace(MARKER, cli_reference())
