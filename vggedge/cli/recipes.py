"""``vggedge recipes``: list the shipped recipes; ``vggedge recipes show NAME``: print one."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="List the shipped recipes, or show one.", invoke_without_command=True, no_args_is_help=False)
console = Console()


@app.callback()
def list_recipes(context: typer.Context) -> None:
    """List the shipped recipes with one line each."""
    if context.invoked_subcommand:
        return
    from vggedge.recipe import load_recipe, shipped_recipes

    table = Table("recipe", "conversion", "steps", "description")
    for name in shipped_recipes():
        recipe = load_recipe(name)
        table.add_row(name, recipe.quantization, " → ".join(s.type for s in recipe.steps), recipe.description)
    console.print(table)


@app.command("show")
def show(name: Annotated[str, typer.Argument(help="A shipped recipe name or a .toml path.")]) -> None:
    """Print a recipe, resolved (every default filled in), in the recipe file format."""
    from vggedge.recipe import load_recipe

    typer.echo(load_recipe(name).to_toml(), nl=False)
