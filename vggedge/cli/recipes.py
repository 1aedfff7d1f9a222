"""``vggedge recipes``: list the shipped recipes; ``vggedge recipes show NAME``: print one."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="List the shipped recipes, or show one.", invoke_without_command=True, no_args_is_help=False)
console = Console()


@app.callback()
def list_recipes(
    context: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the recipes, resolved, as JSON.")] = False,
) -> None:
    """List the shipped recipes with one line each (`vggedge recipes show NAME` prints one in full)."""
    if context.invoked_subcommand:
        return
    from vggedge.recipe.schema import load_recipe, shipped_recipes

    recipes = [load_recipe(name) for name in shipped_recipes()]
    if as_json:
        typer.echo(json.dumps([recipe.to_dict() for recipe in recipes], indent=2))
        return
    # One line per recipe at any width: the description is cut with an ellipsis, never wrapped.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    width = max(len(recipe.name) for recipe in recipes)
    table.add_column("recipe", no_wrap=True, min_width=width)
    table.add_column("conversion", no_wrap=True, min_width=len("conversion"))
    table.add_column("steps", no_wrap=True, overflow="ellipsis", max_width=24)
    # The description takes what is left (rich would otherwise squeeze every column to fit it).
    left = console.width - width - len("conversion") - 24 - 2 * 4
    left = max(12, left)
    table.add_column("description", no_wrap=True, max_width=left)
    for recipe in recipes:
        table.add_row(
            recipe.name,
            recipe.quantization,
            " → ".join(s.type for s in recipe.steps),
            recipe.description if len(recipe.description) <= left else recipe.description[: left - 1] + "…",
        )
    console.print(table)


@app.command("show")
def show(name: Annotated[str, typer.Argument(help="A shipped recipe name or a .toml path.")]) -> None:
    """Print a recipe, resolved (every default filled in), in the recipe file format."""
    from vggedge.recipe.schema import load_recipe

    typer.echo(load_recipe(name).to_toml(), nl=False)
