"""The ``vggedge`` command: one module per subcommand, each a thin wrapper over a public function.

Subcommand modules import heavy dependencies inside the command, so ``vggedge bench`` on a device
never imports TensorFlow and ``vggedge --help`` is instant.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from vggedge.cli.options import Command, Group
from vggedge.core.errors import UserError
from vggedge.core.formatting import printable

# An error line is read whole; anything longer was quoting a user's input at length
ERROR_LIMIT = 1000


app = typer.Typer(
    name="vggedge",
    cls=Group,
    help="Make VGG16 small and fast for edge devices: optimize with recipes, benchmark on a device, compare "
    "reports, classify images with the result.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
err = Console(stderr=True)


EXAMPLES = {
    "optimize": [
        ("the offline sample, full int8", "vggedge optimize --recipe int8"),
        ("your model and photos, every recipe", "vggedge optimize -m model.keras --data photos/ --recipe all"),
        (
            "the fastest shape within 1 point, 10 minutes",
            "vggedge optimize -m model.keras --data photos/ --recipe auto --search-minutes 10",
        ),
        ("a quick trial of a recipe", "vggedge optimize -m model.keras --data photos/ --recipe fast --max-epochs 1"),
    ],
    "inspect": [("how vggedge reads your model", "vggedge inspect model.keras")],
    "kit": [("the profiling kit for --time-on TABLE.json", "vggedge kit model.keras --out kit/")],
    "bench": [
        ("one model on this board", "vggedge bench reports/int8/model.tflite --data reports/sklearn-digits-32-eval"),
        ("several models and thread counts", "vggedge bench reports/*/model.tflite --threads 1,4"),
        ("time a workstation's candidates here", "vggedge bench --serve"),
    ],
    "compare": [("every report, with a page", "vggedge compare reports/ --out reports/")],
    "predict": [("classify photos", "vggedge predict reports/int8/model.tflite photo.jpg")],
}


def show_version(value: bool) -> None:
    if value:
        from vggedge.core.version import __version__

        typer.echo(f"vggedge {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=show_version, is_eager=True, help="Print vggedge's version and exit."),
    ] = False,
) -> None:
    """Make VGG16 small and fast for edge devices: optimize with recipes, benchmark on a device, compare reports,
    classify images with the result."""


def epilog(command: str) -> str:
    """The command's examples, for the end of its --help."""
    return "**Examples**\n\n" + "\n\n".join(f"{what}: `{line}`" for what, line in EXAMPLES[command])


def _register() -> None:
    from vggedge.cli import bench, compare, inspect, kit, optimize, predict, recipes

    for name, command in (
        ("optimize", optimize.optimize_command),
        ("inspect", inspect.inspect_command),
        ("kit", kit.kit_command),
        ("bench", bench.bench_command),
        ("compare", compare.compare_command),
        ("predict", predict.predict_command),
    ):
        app.command(name=name, epilog=epilog(name), cls=Command)(command)
    app.add_typer(recipes.app, name="recipes")


_register()


def main() -> None:
    """Entry point: a UserError becomes one line on stderr and exit code 2, with no traceback.

    Usage errors (unknown option, bad value) are the CLI framework's: it prints them and exits 2.
    """
    try:
        app()
    except UserError as error:  # escaped: a file name in it cannot move the terminal's cursor or forge a line
        err.print(Text.assemble(("error:", "bold red"), " ", printable(error, ERROR_LIMIT)), soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted: files are written atomically, so nothing half-written was left behind")
        sys.exit(130)


def click_command():  # noqa: ANN201 - a click.Group
    """The app as a click command group: what the docs' CLI reference (vggedge.cli.reference) is generated from."""
    return typer.main.get_command(app)
