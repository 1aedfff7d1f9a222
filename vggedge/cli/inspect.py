"""``vggedge inspect MODEL``: the model's anatomy and which shipped recipes apply to it (and why not)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from vggedge.cli.options import MODEL_ARGUMENT_HELP, CacheDirOption, OfflineOption, VerboseOption, apply_verbosity
from vggedge.core.cache import default_cache_dir

ModelOption = Annotated[str, typer.Argument(help=MODEL_ARGUMENT_HELP)]

WeightsOption = Annotated[Optional[str], typer.Option(help="For vgg16: a weights .h5 file, or 'random'.")]

PreprocessOption = Annotated[Optional[str], typer.Option(help="As for optimize: none, unit, tf, caffe or torch.")]

AsJsonOption = Annotated[bool, typer.Option("--json", help="Print the anatomy and the recipe checks as JSON.")]


def inspect_command(
    model: ModelOption,
    weights: WeightsOption = None,
    preprocess: PreprocessOption = None,
    as_json: AsJsonOption = False,
    cache_dir: CacheDirOption = None,
    offline: OfflineOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Show how vggedge reads a model and which recipes apply to it.

    Preprocessing, conv blocks, head, output, parameters, FLOPs, and for
    every shipped recipe whether it applies (checked exactly as `optimize` checks before any work)."""
    apply_verbosity(verbose)
    from vggedge.run.inspection import inspect_model

    facts, baseline = inspect_model(model, weights, preprocess, cache_dir or default_cache_dir(), offline)
    if as_json:
        typer.echo(json.dumps(facts, indent=2))
        return
    print_inspection(facts, baseline)


def print_inspection(facts: dict, baseline) -> None:  # noqa: ANN001 - a models.loading.Baseline
    """The model's parts, one line each, and the table of which recipes apply."""
    from vggedge.models.normalization import summary as normalization_summary
    from vggedge.steps.context import frozen_layers

    anatomy = baseline.anatomy
    recipes = {name: verdict["why_not"] for name, verdict in facts["recipes"].items()}
    console = Console()
    console.print(
        f"[bold]{baseline.source}[/]: {facts['params']:,} params, {facts['flops'] / 1e9:.3f} GFLOPs, "
        f"input {facts['input_shape']}",
        highlight=False,
    )
    console.print(f"preprocessing: {baseline.preprocess_note}", highlight=False)
    if facts.get("translation"):
        t = facts["translation"]
        console.print(
            f"translated from {t['framework']} ({t['layout']}); against {t['verified_against']}: largest class-score "
            f"difference {t['max_score_difference']:.2g}, top-1 agreement {t['top1_agreement']:.0%} on "
            f"{t['images']} probe images",
            highlight=False,
        )
    if baseline.normalization:
        console.print(f"normalization: {normalization_summary(baseline.normalization)}", highlight=False)
    for number, block in enumerate(anatomy.blocks, start=1):
        console.print(f"block {number}: {len(block)} conv ({', '.join(block)})", highlight=False)
    hidden = ", ".join(anatomy.hidden) or "none"
    console.print(f"head: {anatomy.head_kind} ({anatomy.head_pool}), hidden dense: {hidden}", highlight=False)
    console.print(
        f"output: {anatomy.output}, {anatomy.activation}, {anatomy.classes} classes"
        + ("" if anatomy.is_vgg16 else "  (not VGG16's 2-2-3-3-3 conv layout: VGG-like)"),
        highlight=False,
    )
    frozen = [name for name in frozen_layers(baseline.model) if name in anatomy.convs]
    if frozen:
        console.print(
            f"frozen: {len(frozen)} of {len(anatomy.convs)} conv layers (a transfer-learning base). The head swap "
            "(gap, gap-int8, fast, edge) trains only the new head on the frozen features and may cost accuracy "
            "here (seen: 3.3 points on a nested frozen VGG16); filter-prune unfreezes the base for its fine-tune.",
            highlight=False,
        )
    table = Table("recipe", "applies", "why not", show_lines=False)
    for name, why in recipes.items():
        table.add_row(name, "yes" if why is None else "no", why or "")
    console.print(table)
