"""The ``vggedge`` command: one module per subcommand, each a thin wrapper over a public function.

Subcommand modules import heavy dependencies inside the command, so ``vggedge bench`` on a device
never imports TensorFlow and ``vggedge --help`` is instant.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from vggedge.core.errors import UserError

app = typer.Typer(
    name="vggedge",
    help="Make VGG16 small and fast for edge devices: optimize with recipes, benchmark on a device, compare "
    "reports, classify images with the result.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def _register() -> None:
    from vggedge.cli import bench, compare, inspect, kit, optimize, predict, recipes

    app.command(name="optimize")(optimize.optimize_command)
    app.command(name="inspect")(inspect.inspect_command)
    app.add_typer(recipes.app, name="recipes")
    app.command(name="kit")(kit.kit_command)
    app.command(name="bench")(bench.bench_command)
    app.command(name="compare")(compare.compare_command)
    app.command(name="predict")(predict.predict_command)


_register()


def main() -> None:
    """Entry point: a UserError becomes one line on stderr and exit code 2, with no traceback.

    Usage errors (unknown option, bad value) are the CLI framework's: it prints them and exits 2.
    """
    try:
        app()
    except UserError as error:
        err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted: files are written atomically, so nothing half-written was left behind")
        sys.exit(130)
