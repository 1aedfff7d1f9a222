"""Cross-layer equalization on and off, paired: every shipped post-training int8 recipe, one model per run.

Each recipe's steps run once (seeded as `optimize` seeds them); the model they leave is converted twice,
as it is and equalized, and both TFLite models are evaluated on the same evaluation images with the
light interpreter. So the two columns differ by the equalization alone, not by a fine-tune's luck.

    python benchmarks/equalization.py --model sample
    python benchmarks/equalization.py --model form.keras --data DIR --preprocess unit --max-epochs 2

Prints one Markdown table (and appends it to ``reports/benchmarks/equalization.md``): top-1 of the
float Keras model the conversion starts from, int8 off and on, their agreement with that Keras model, and the
largest channel-range ratio equalization found.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INT8_RECIPES = ("int8", "gap-int8", "prune", "edge", "fast")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sample")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--preprocess")
    parser.add_argument("--recipes", default=",".join(INT8_RECIPES))
    parser.add_argument("--max-epochs", type=int, help="cut every fine-tune (as optimize --max-epochs)")
    parser.add_argument("--label", help="the model's name in the table (default: --model)")
    args = parser.parse_args()

    from vggedge.core.metrics import top1_classes
    from vggedge.device.environment import cpu_features, cpu_name
    from vggedge.device.runtime import TFLiteModel
    from vggedge.export.convert import convert
    from vggedge.export.equalize import equalize
    from vggedge.recipe.schema import QuantizeStep, load_recipe
    from vggedge.run.baseline import prepare, step_context
    from vggedge.run.calibration import calibration_images
    from vggedge.run.options import OptimizeOptions
    from vggedge.steps import apply_steps

    recipes = [load_recipe(name).with_max_epochs(args.max_epochs) for name in args.recipes.split(",")]
    options = OptimizeOptions(
        model=args.model, data=args.data, preprocess=args.preprocess, out=Path(tempfile.mkdtemp()), progress=False
    )
    prepared = prepare(options, recipes)
    images, labels = prepared.eval.images, prepared.eval.labels
    rows = []
    for recipe in prepared.recipes:
        steps = [
            step.model_copy(update={"equalize": False}) if isinstance(step, QuantizeStep) else step
            for step in recipe.steps
        ]
        started = time.perf_counter()
        unequalized = recipe.model_copy(update={"steps": steps})
        model, _ = apply_steps(unequalized, prepared.baseline.model, step_context(prepared, options), options.seed)
        source = top1_classes(model.predict(images, verbose=0))
        calibration = calibration_images(prepared, recipe.calibration_samples)
        balanced, record = equalize(model)
        figures = {}
        for name, candidate in (("off", model), ("on", balanced)):
            path = options.out / f"{recipe.name}-{name}.tflite"
            path.write_bytes(convert(candidate, "int8", calibration, scratch=options.out))
            predicted = top1_classes(TFLiteModel(path).predict(images))
            figures[name] = ((predicted == labels).mean() * 100, (predicted == source).mean() * 100)
        rows.append(
            f"| {args.label or args.model} | {recipe.name} | {(source == labels).mean() * 100:.2f} | "
            f"{figures['off'][0]:.2f} | {figures['on'][0]:.2f} | {figures['on'][0] - figures['off'][0]:+.2f} | "
            f"{figures['off'][1]:.1f} | {figures['on'][1]:.1f} | {record['largest_channel_ratio_before']} | "
            f"{time.perf_counter() - started:.0f} |"
        )
        print(rows[-1], flush=True)
    header = [
        f"Equalization on/off on {cpu_name()} ({', '.join(cpu_features())}), {len(images)} evaluation images, "
        f"max epochs {args.max_epochs or 'as shipped'}, seed {options.seed}:",
        "",
        "| model | recipe | float top-1 | int8 off | int8 on | on − off | agree off | agree on | channel ratio | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    out = ROOT / "reports" / "benchmarks" / "equalization.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as stream:
        stream.write("\n".join(header + rows) + "\n\n")
    print("\n".join(header + rows))


if __name__ == "__main__":
    main()
