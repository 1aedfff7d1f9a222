"""The docs' CLI reference names every option of every command, and every example a `--help` shows parses."""

from __future__ import annotations

import shlex

import pytest

from vggedge.cli import EXAMPLES, click_command
from vggedge.cli.reference import cli_reference


def every_command():  # noqa: ANN201
    root = click_command()
    for name, command in root.commands.items():
        yield name, command
        for sub_name, sub in getattr(command, "commands", {}).items():
            yield f"{name} {sub_name}", sub


def test_the_reference_names_every_option_of_every_command():
    page = cli_reference()
    commands = list(every_command())
    assert len(commands) >= 7
    for name, command in commands:
        assert f"`vggedge {name}`" in page, name
        for option in (p for p in command.params if p.param_type_name == "option" and not p.hidden):
            assert option.opts[0] in page, (name, option.opts)


@pytest.mark.parametrize(("command", "line"), [(c, line) for c, pairs in EXAMPLES.items() for _, line in pairs])
def test_every_help_example_parses(command, line):
    root = click_command()
    words = shlex.split(line)
    assert words[:2] == ["vggedge", command]
    target = root.commands[command]
    target.make_context(command, words[2:])  # an unknown option or a missing argument raises here


def test_the_version_is_printed_and_importable(cli):
    import vggedge

    done = cli("--version")
    assert done.code == 0 and done.out.strip() == f"vggedge {vggedge.__version__}" and vggedge.__version__[0].isdigit()


def test_no_help_text_holds_an_angle_placeholder_markdown_would_eat():
    """--help renders Markdown, where `<device>` is an HTML tag and vanishes ("default /bench-" was printed)."""
    import re

    for name, command in every_command():
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        for text in texts:
            assert not re.search(r"<[A-Za-z]", text.replace("`", "")), (name, text)


@pytest.mark.parametrize("columns", [80, 200])
def test_recipes_is_one_line_each_cut_with_an_ellipsis_at_any_width(cli, monkeypatch, columns):
    from vggedge.recipe.schema import load_recipe, shipped_recipes

    monkeypatch.setenv("COLUMNS", str(columns))
    import vggedge.cli.recipes as module

    monkeypatch.setattr(module, "console", type(module.console)(width=columns))
    done = cli("recipes")
    lines = done.out.splitlines()
    names = shipped_recipes()
    assert done.code == 0 and len(lines) == 2 + len(names)
    for name, text in zip(names, lines[2:], strict=True):
        description = load_recipe(name).description
        assert text.startswith(name) and len(text) <= columns
        assert description in text or (text.endswith("…") and description[:10] in text), text
