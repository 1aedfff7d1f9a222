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
