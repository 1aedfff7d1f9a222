"""``vggedge recipes``: list the shipped recipes; ``vggedge recipes show NAME``: print one."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from vggedge.cli.options import Command, Group

app = typer.Typer(
    cls=Group, help="List the shipped recipes, or show one.", invoke_without_command=True, no_args_is_help=False
)
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
    # One line per recipe at any width: the description takes what is left and is cut with an ellipsis
    chains = [" → ".join(s.type for s in recipe.steps) for recipe in recipes]
    rows = [(r.name, str(r.quantization.value), chain, r.description) for r, chain in zip(recipes, chains, strict=True)]
    widths = [max(len(head), *(len(row[i]) for row in rows)) for i, head in enumerate(("recipe", "conversion"))]
    widths.append(min(24, max(len("steps"), *map(len, chains))))
    left = max(12, console.width - sum(widths) - 2 * len(widths) - 1)

    def line(cells: tuple[str, ...]) -> str:
        fixed = "  ".join(cut(text, width).ljust(width) for text, width in zip(cells, widths, strict=False))
        return f"{fixed}  {cut(cells[3], left)}"

    console.print(line(("recipe", "conversion", "steps", "description")), style="bold", markup=False, highlight=False)
    console.print("─" * min(console.width - 1, sum(widths) + 2 * len(widths) + left), markup=False)
    for row in rows:
        console.print(line(row), markup=False, highlight=False, overflow="ignore", crop=False)


def cut(text: str, width: int) -> str:
    """``text`` within ``width`` characters, its end replaced by an ellipsis when it did not fit."""
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command("show", cls=Command)
def show(name: Annotated[str, typer.Argument(help="A shipped recipe name or a .toml path.")]) -> None:
    """Print a recipe, resolved (every default filled in), in the recipe file format."""
    from vggedge.recipe.schema import load_recipe

    typer.echo(load_recipe(name).to_toml(), nl=False)
