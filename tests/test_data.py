"""Image folders: RGB conversion, corrupt files skipped and counted, deterministic split, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vggedge.core.data import load_all, load_folder
from vggedge.core.errors import UserError


def make_folder(root, per_class: int = 6, classes=("cat", "dog")):  # noqa: ANN001, ANN201
    rng = np.random.default_rng(1)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.jpg" if i % 2 else root / name / f"{i}.png")
    return root


def test_grayscale_and_alpha_become_rgb_and_corrupt_files_are_counted(tmp_path):
    root = make_folder(tmp_path / "d")
    Image.fromarray(np.full((10, 10), 200, np.uint8), mode="L").save(root / "cat" / "gray.png")
    Image.fromarray(np.zeros((10, 10, 4), np.uint8), mode="RGBA").save(root / "dog" / "clear.png")
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "dog" / "notes.txt").write_text("ignored: not an image suffix")
    classes, split, skipped = load_all(root, 16, progress=False)
    assert classes == ["cat", "dog"]
    assert skipped == 1 and len(split) == 14
    assert split.images.shape == (14, 16, 16, 3) and split.images.dtype == np.uint8
    gray = split.images[split.keys.index("cat/gray.png")]
    assert (gray == 200).all()
    transparent = split.images[split.keys.index("dog/clear.png")]
    assert (transparent == 255).all()  # composited on white, not black


def test_split_is_deterministic_and_disjoint(tmp_path):
    root = make_folder(tmp_path / "d", per_class=20)
    a = load_folder(root, 16, eval_samples=10, calibration_samples=5, progress=False)
    b = load_folder(root, 16, eval_samples=10, calibration_samples=5, progress=False)
    assert a.eval.keys == b.eval.keys and a.calibration.keys == b.calibration.keys
    assert (len(a.eval), len(a.calibration), len(a.train)) == (10, 5, 25)
    assert not set(a.eval.keys) & set(a.calibration.keys) and not set(a.eval.keys) & set(a.train.keys)


def test_eval_takes_at_most_half_of_a_small_folder(tmp_path):
    data = load_folder(
        make_folder(tmp_path / "d", per_class=3), 16, eval_samples=500, calibration_samples=100, progress=False
    )
    assert len(data.eval) == 3 and len(data.calibration) == 3 and len(data.train) == 0


def test_sample_split_is_the_documented_one(digits):
    assert (len(digits.eval), len(digits.calibration), len(digits.train)) == (360, 100, 1337)
    assert digits.class_names == [str(i) for i in range(10)]
    assert digits.eval.images.shape[1:] == (32, 32, 3)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "has no JPEG or PNG images"),
        (lambda root: (root / "a").mkdir(parents=True), "has no JPEG or PNG images"),
        (
            lambda root: ((root / "a").mkdir(parents=True), (root / "a" / "x.png").write_bytes(b"junk")),
            "could be decoded",
        ),
    ],
)
def test_bad_folders(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(UserError, match=message):
        load_folder(root, 16, progress=False)


def test_eval_samples_bounds_an_evaluation_folder_in_checksum_order(tmp_path):
    """An evaluation folder is used whole by default; --eval-samples takes the first N in the fixed order,
    so a 50,000-image validation set need not be decoded into memory."""
    import zlib

    from vggedge.core.data import load_dataset

    train = make_folder(tmp_path / "train", per_class=30)
    held_out = make_folder(tmp_path / "held-out", per_class=20)
    whole = load_dataset(train, 16, calibration_samples=5, eval_root=held_out)
    assert len(whole.eval) == 40 and len(whole.train) == 55
    bounded = load_dataset(train, 16, eval_samples=12, calibration_samples=5, eval_root=held_out)
    in_order = sorted(whole.eval.keys, key=lambda key: zlib.crc32(key.encode()))
    assert bounded.eval.keys == in_order[:12] and bounded.skipped == 0
    assert len(bounded.train) == 55 and bounded.describe().eval_samples == 12
    split = load_dataset(train, 16, calibration_samples=5)  # one folder: the default 500, at most half
    assert len(split.eval) == 30
