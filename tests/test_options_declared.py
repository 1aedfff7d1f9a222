"""Each option is declared once (vggedge.core.keywords): the API's keywords, the CLI's options, the run's fields and
the help all follow from that one declaration, and `--help` names every value (no `<bool>`, no `{model}`)."""

from __future__ import annotations

import inspect
import re

import pytest

import vggedge
from vggedge.cli import click_command
from vggedge.core.keywords import (
    BenchInputs,
    BenchKeywords,
    OptimizeInputs,
    OptimizeKeywords,
    ProfileKeywords,
    ServeKeywords,
    declared,
    thread_counts,
)


def options_of(command_name: str) -> dict:
    command = click_command().commands[command_name]
    return {p.name: p for p in command.params if p.param_type_name == "option"}


@pytest.mark.parametrize(
    ("command", "groups"),
    [
        ("optimize", (OptimizeInputs, OptimizeKeywords)),
        ("bench", (BenchInputs, BenchKeywords, ServeKeywords, ProfileKeywords)),
    ],
)
def test_every_declared_option_is_a_cli_option_with_its_default_and_help(command, groups):
    offered = options_of(command)
    for group in groups:
        for option in declared(group):
            assert option.name in offered, (command, option.name)
            cli = offered[option.name]
            assert cli.help == option.opt.help and cli.default == option.opt.default, option.name
            assert option.flag in cli.opts, (option.flag, cli.opts)
            if option.opt.envvar:
                assert cli.envvar == option.opt.envvar


def test_the_api_signatures_are_the_declarations():
    for function, keywords in ((vggedge.optimize, OptimizeKeywords), (vggedge.search, OptimizeKeywords),
                               (vggedge.bench, BenchKeywords)):  # fmt: skip
        parameters = inspect.signature(function).parameters
        for option in declared(keywords):
            assert parameters[option.name].default == option.opt.default, (function.__name__, option.name)
            assert parameters[option.name].kind is inspect.Parameter.KEYWORD_ONLY
        assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def test_a_misspelt_keyword_is_refused_as_python_refuses_one_naming_the_near_one(tmp_path):
    with pytest.raises(TypeError, match=r"optimize\(\) got an unexpected keyword argument 'max_dorp'; did you mean "
                                        r"'max_drop'\?"):  # fmt: skip
        vggedge.optimize("sample", "int8", max_dorp=2, out=tmp_path)
    with pytest.raises(TypeError, match="bench.*'thread'.*'threads'"):
        vggedge.bench(tmp_path / "model.tflite", thread=2)
    assert not any(tmp_path.iterdir())


def test_the_run_reads_every_declared_option_it_does_not_resolve_first():
    import dataclasses

    from vggedge.run.options import RESOLVED_BEFORE, OptimizeOptions

    fields = {field.name for field in dataclasses.fields(OptimizeOptions)}
    asked = {o.name for o in [*declared(OptimizeInputs), *declared(OptimizeKeywords)] if o.opt.panel != "Automatic "
             "search (--recipe auto)"} - RESOLVED_BEFORE  # fmt: skip
    assert asked <= fields and {"auto", "placement", "skip_inapplicable"} <= fields
    options = OptimizeOptions()
    assert options.calibration_samples == 100 and options.resize == "stretch" and str(options.out) == "reports"


@pytest.mark.parametrize(("value", "counts"), [(None, None), (4, [4]), ("1,2,4", [1, 2, 4]), ([2, 1], [2, 1])])
def test_threads_are_one_count_several_or_a_comma_list(value, counts):
    assert thread_counts(value) == counts


@pytest.mark.parametrize("value", ["", "1,x", "0", [0], ["2"]])
def test_bad_thread_counts_are_one_line(value):
    from vggedge.core.errors import UserError

    with pytest.raises(UserError, match="--threads takes counts"):
        thread_counts(value)


def test_help_names_every_value_and_no_flag_or_argument_by_its_python_type(cli):
    names = ["", *click_command().commands, "recipes show"]
    for name in names:
        done = cli(*name.split(), "--help")
        assert done.code == 0, name
        assert not re.search(r"<(bool|str|int|float|path|list)|\{[a-z]", done.out), (name, done.out)
    optimize = cli("optimize", "--help").out
    assert "POINTS" in optimize and "--quiet" in optimize and "MODEL" in cli("predict", "--help").out
