"""How a dense layer after the last block is refitted when a cut leaves it too few rows: the minimum-norm ridge
solution (every direction the refit images miss set to zero) against a ridge toward the layer's own weights.

After a block-5 cut, a 224-pixel VGG16's fc1 reads 25,088 inputs, and the search refits it from one row per
image (103 images). On the real-photo VGG16 of ``benchmarks/real_photos.py`` (trained once, cached), block 5 is
cut to each keep ratio, its later layers refitted both ways against the uncut model's outputs on the first 103
training photographs, and each thin model scored in float on the 153 validation photographs: top-1 and
agreement with the uncut model. Needs ``../shared/data/hymenoptera``; writes
``reports/benchmarks/dense-refit-<machine>.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_photos import DATA, trained_model  # noqa: E402

KEEPS = (0.75, 0.5, 0.25)


def compare(keeps: tuple[float, ...], epochs: int) -> tuple[list[dict], dict]:
    """One row per (keep ratio, way of fitting), and the facts every row shares."""
    from vggedge.core.data import load_dataset
    from vggedge.models.loading import load_model_file
    from vggedge.steps import reconstruct
    from vggedge.steps.filters import thin_model

    model = load_model_file(trained_model(epochs), "caffe").model
    data = load_dataset(DATA, 224, progress=False)
    images = reconstruct.first_images(data.train, reconstruct.refit_image_count(model))
    pixels, labels = data.eval.images, data.eval.labels
    reference = model.predict(pixels, verbose=0).argmax(axis=1)
    targets = reconstruct.starting_targets(model, images)
    with_prior = reconstruct.ridge_solve

    def minimum_norm(design, wanted, dual=None, prior=None):  # noqa: ANN001, ANN202, ARG001 - the prior dropped
        return with_prior(design, wanted, dual)

    block5 = [layer.name for layer in model.layers if layer.name.startswith("block5_conv")]
    rows = []
    for keep in keeps:
        for fit, solver in (("minimum norm", minimum_norm), ("toward its own weights", with_prior)):
            kept: dict = {}
            thin, _ = thin_model(model, {name: 1 - keep for name in block5}, kept=kept)
            started = time.perf_counter()
            reconstruct.ridge_solve = solver
            try:
                reconstruct.reconstruct(model, thin, kept, images, targets=targets)
            finally:
                reconstruct.ridge_solve = with_prior
            seconds = time.perf_counter() - started
            predicted = thin.predict(pixels, verbose=0).argmax(axis=1)
            rows.append(
                {
                    "keep": keep,
                    "fit": fit,
                    "top1": float(np.mean(predicted == labels)),
                    "agreement": float(np.mean(predicted == reference)),
                    "refit_s": round(seconds, 1),
                }
            )
            print(rows[-1], flush=True)
    import platform

    from real_photos import commit

    from vggedge.backend.keras_env import tf

    facts = {
        "versions": f"Python {platform.python_version()}, TensorFlow {tf.__version__}, NumPy {np.__version__}",
        "commit": commit(),
        "refit_images": len(images),
        "eval_images": len(labels),
        "baseline_top1": float(np.mean(reference == labels)),
    }
    return rows, facts


def markdown(rows: list[dict], facts: dict, environment: str) -> str:
    lines = [
        f"# fc1's refit after a block-5 cut: minimum norm or toward its own weights ({environment})",
        "",
        f"`python benchmarks/dense_refit.py`: the real-photo VGG16 ({facts['baseline_top1']:.1%} top-1), block 5 cut",
        f"to each keep ratio, refitted on {facts['refit_images']} training photographs, scored in float on",
        f"{facts['eval_images']} validation photographs. {facts['versions']}; commit {facts['commit']}.",
        "",
        "| block 5 kept | fc1 refit | top-1 | agreement with the uncut model | refit s |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r['keep']:g} | {r['fit']} | {r['top1']:.1%} | {r['agreement']:.1%} | {r['refit_s']} |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    from fullsize import environment_name

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keeps", type=float, nargs="*", default=list(KEEPS))
    parser.add_argument("--epochs", type=int, default=8, help="training epochs of the cached real-photo model")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"no photographs at {DATA}: this benchmark needs ../shared/data/hymenoptera")
    rows, facts = compare(tuple(args.keeps), args.epochs)
    environment = environment_name()
    path = args.out / f"dense-refit-{environment}.md"
    path.write_text(markdown(rows, facts, environment))
    print(path.read_text())


if __name__ == "__main__":
    main()
