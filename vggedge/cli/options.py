"""Command-line options made from the one declaration of each option (:mod:`vggedge.core.keywords`), and the
few that only the command line has (``--verbose``).

The CLI is the one place vggedge reads its own environment variables (each option's ``envvar``); below it, every
function is handed the value.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vggedge.core.keywords import (  # noqa: F401 - the panels, re-exported for the commands' own options
    BUDGET,
    DATA,
    GENERAL,
    MODEL,
    OUTPUT,
    PROFILE,
    SEARCH,
    SERVER,
    TIMING,
    TRAINING,
    Declared,
    OptimizeKeywords,
    declared,
)

# What ``--help`` names a value it was not told the name of (Typer 0.29 shows ``<int range>``, ``<bool>`` on every
# flag and ``{model}`` for an argument)
VALUE_NAMES = {int: "N", float: "NUMBER", Path: "PATH"}


def _named(parameter: Any) -> None:  # noqa: ANN401 - a Typer parameter
    if parameter.metavar is not None:
        return
    if getattr(parameter, "is_flag", False):
        parameter.metavar = ""
    elif parameter.param_type_name == "argument":  # MODEL, [IMAGES]... as click writes them (not {model})
        name = parameter.metavar = parameter.name.upper()
        usage = (name if parameter.required else f"[{name}]") + ("..." if parameter.nargs != 1 else "")
        parameter._usage_display_name = lambda: usage
        parameter.display_type_rich = lambda ctx: None  # the name says it: no <list[Path]> beside it
    else:
        parameter.metavar = VALUE_NAMES.get(parameter.type_descriptor.annotation, "TEXT")


class _NamedValues:
    """Every option's value named in ``--help`` (a flag: nothing), ``--help`` itself a flag."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - click's signature
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        for parameter in self.params:  # type: ignore[attr-defined]
            _named(parameter)

    def get_help_option(self, ctx):  # noqa: ANN001, ANN201 - click's signature
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option


class Command(_NamedValues, typer.core.TyperCommand):
    """Every ``vggedge`` command."""


class Group(_NamedValues, typer.core.TyperGroup):
    """``vggedge`` and ``vggedge recipes``."""


def cli_type(option: Declared) -> Any:  # noqa: ANN401 - a typing construct
    """The type the command line parses an option's value as: a path where the API takes a path or a string, a
    string where it also takes a list (``--threads 1,2,4``), else the API's own type."""
    kinds = [kind for kind in typing.get_args(option.kind) if kind is not type(None)] or [option.kind]
    kind = Path if Path in kinds else (str if str in kinds else kinds[0])
    optional = type(None) in typing.get_args(option.kind) or option.opt.default is None
    return Optional[kind] if optional and kind is not bool else kind  # noqa: UP007 - typer reads Optional


def typer_option(option: Declared, **override: Any) -> Any:  # noqa: ANN401 - a typing construct
    """``Annotated[type, typer.Option(...)]`` for one declared option, as a command's parameter annotation."""
    opt, kind = option.opt, cli_type(option)
    shown = opt.default is not None and not (kind is bool and opt.default is False)
    settings: dict[str, Any] = dict(
        help=opt.help,
        rich_help_panel=None if opt.panel == GENERAL else opt.panel,
        metavar="" if kind is bool else opt.metavar,
        min=opt.min,
        max=opt.max,
        envvar=opt.envvar,
        show_default=shown,
    )
    return Annotated[kind, typer.Option(*option.flags, **(settings | override))]


def parameter(option: Declared, name: str | None = None) -> inspect.Parameter:
    """A declared option as a command's keyword parameter, its default the API's."""
    return inspect.Parameter(
        name or option.name, inspect.Parameter.KEYWORD_ONLY, default=option.opt.default, annotation=typer_option(option)
    )


def command(function: Callable[..., None], *keywords: type, extra: tuple[inspect.Parameter, ...] = ()) -> Callable:
    """``function(**asked)`` offered with every option the ``TypedDict``\\ s declare, then ``extra``: Typer reads
    the options from this signature, and calls ``function`` with one keyword per option."""
    parameters = [parameter(option) for group in keywords for option in declared(group)]
    function.__signature__ = inspect.Signature([*parameters, *extra])  # type: ignore[attr-defined]
    return function


def _shared(name: str) -> Any:  # noqa: ANN401 - a typing construct
    return typer_option(next(option for option in declared(OptimizeKeywords) if option.name == name))


# The optimize options other commands share, from the same declarations
CacheDirOption = _shared("cache")
OfflineOption = _shared("offline")
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", rich_help_panel=OUTPUT, help="No progress bars.")]
VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        envvar="VGGEDGE_VERBOSE",
        metavar="",
        help="Also show TensorFlow's, the converter's and the interpreter's own log lines (hidden by default).",
    ),
]
VERBOSE = inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=VerboseOption)


def apply_verbosity(verbose: bool) -> None:
    """Called first by every command that loads TensorFlow or an interpreter, before either is imported."""
    if not verbose:
        from vggedge.core.quiet import silence_native_stderr

        silence_native_stderr()


# What a command that takes a model as its argument (inspect, kit) reads: as optimize's --model
MODEL_ARGUMENT_HELP = (
    "'sample', 'vgg16' (with --weights), a .keras/.h5 file or SavedModel folder, or a PyTorch (.safetensors, .pth, "
    ".pt) or ONNX VGG."
)
