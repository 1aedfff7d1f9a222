"""mkdocs hooks: the CLI reference page is made from the Typer app at build time (vggedge.cli.reference)."""

from __future__ import annotations

MARKER = "<!-- cli-reference -->"


def on_page_markdown(markdown: str, page, **kwargs) -> str:  # noqa: ANN001, ANN003 - the mkdocs hook signature
    if MARKER not in markdown:
        return markdown
    from vggedge.cli.reference import cli_reference

    return markdown.replace(MARKER, cli_reference())
