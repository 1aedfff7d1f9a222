"""The command-line reference as Markdown, from the Typer app itself: every command, its usage and every option
with its help, default and panel, exactly as ``--help`` prints them. The docs site's CLI page is made from this
(``docs/hooks.py``); a test checks that it names every option of every command.

(mkdocs-click cannot do it: Typer 0.29 bundles its own click, so its options are not ``click.Option`` and the
page silently lost every option.)
"""

from __future__ import annotations

import html


def cell(text: str) -> str:
    """``text`` for a Markdown table cell: angle brackets kept visible, pipes and newlines not breaking the row."""
    return html.escape(" ".join(text.split()), quote=False).replace("|", "\\|")


def command_markdown(command: object, context: object, heading: str) -> list[str]:
    """One command's section: description, usage, arguments and options (a group: then each subcommand)."""
    usage = command.get_usage(context).removeprefix("Usage: ")  # type: ignore[attr-defined]
    help_text = (command.help or "").strip()  # type: ignore[attr-defined]
    lines = [f"{heading} `{context.command_path}`", "", help_text, "", "```text", usage, "```", ""]  # type: ignore[attr-defined]
    arguments = [p for p in command.params if p.param_type_name == "argument"]  # type: ignore[attr-defined]
    options = [p for p in command.params if p.param_type_name == "option" and not p.hidden]  # type: ignore[attr-defined]
    if arguments:
        lines += ["| argument | what |", "|---|---|"]
        lines += [f"| `{p.name.upper()}` | {cell(getattr(p, 'help', None) or '')} |" for p in arguments]
        lines.append("")
    if options:
        lines += ["| option | what | panel |", "|---|---|---|"]
        for option in options:
            names, said = option.get_help_record(context)
            panel = getattr(option, "rich_help_panel", None) or "Options"
            lines.append(f"| `{names}` | {cell(said)} | {cell(panel)} |")
        lines.append("")
    for name, sub in getattr(command, "commands", {}).items():
        lines += command_markdown(sub, type(context)(sub, info_name=name, parent=context), heading + "#")
    return lines


def cli_reference() -> str:
    """Every ``vggedge`` command as Markdown sections (the docs' CLI page)."""
    from vggedge.cli import click_command

    root = click_command()
    context_type = type(root.make_context("vggedge", ["--help"], resilient_parsing=True))
    top = context_type(root, info_name="vggedge")
    lines: list[str] = []
    for name, command in root.commands.items():
        lines += command_markdown(command, context_type(command, info_name=name, parent=top), "##")
    return "\n".join(lines)


def keywords_reference(name: str) -> str:
    """One ``TypedDict`` of :mod:`vggedge.core.keywords` as a Markdown table (the docs' API page): each keyword,
    its type, default, the command line's flag and its help, from the same declaration the CLI is made from."""
    import inspect

    from vggedge.core import keywords

    lines = ["| keyword | type | default | option | what |", "|---|---|---|---|---|"]
    for option in keywords.declared(getattr(keywords, name)):
        kind = inspect.formatannotation(option.kind).replace("pathlib.", "").replace("collections.abc.", "")
        flag = option.flags[0].split("/")[0]
        default = "—" if option.opt.default is None else f"`{option.opt.default!s}`"
        lines.append(
            f"| `{option.name}` | `{kind.replace(' | ', ' or ')}` | {default} | `{flag}` | {cell(option.opt.help)} |"
        )
    return "\n".join(lines)
