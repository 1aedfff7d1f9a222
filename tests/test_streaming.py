"""Training images stream from disk: the same split and pixels as decoding everything, bounded memory."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from PIL import Image

from vggedge.backend.training import image_dataset, predict_images
from vggedge.core.data import FileSplit, Split, decode_image, load_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):  # noqa: ANN201
    """60 JPEGs in 3 classes, one file that is not an image and one JPEG cut short after its header."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for index in range(60):
        target = root / f"class{index % 3}" / f"{index:03d}.jpg"
        target.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(target, quality=90)
    (root / "class0" / "notes.jpg").write_text("not an image")
    whole = (root / "class1" / "001.jpg").read_bytes()
    (root / "class1" / "truncated.jpg").write_bytes(whole[: len(whole) // 3])
    return root


def test_split_is_the_checksum_split_and_training_stays_on_disk(folder):
    data = load_folder(folder, 32, eval_samples=10, calibration_samples=5, progress=False)
    assert isinstance(data.train, FileSplit) and isinstance(data.eval, Split)
    # The split rule, written out: every recognisable image ordered by the checksum of its path.
    keys = sorted(
        (p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg") if p.name != "notes.jpg"),
        key=lambda k: zlib.crc32(k.encode()),
    )
    # The truncated file passes the header check; if it falls among the first 15 it fails to decode
    # there and the next image takes its place, as when every image was decoded up front.
    assert data.eval.keys + data.calibration.keys == [k for k in keys if k != "class1/truncated.jpg"][:15]
    assert set(data.train.keys) == set(keys) - set(data.eval.keys) - set(data.calibration.keys)
    assert data.skipped >= 1  # notes.jpg, found by its header before anything was decoded


def test_streamed_pixels_equal_decoded_ones_and_bad_files_are_left_out(folder):
    data = load_folder(folder, 32, eval_samples=10, calibration_samples=5, progress=False)
    train = data.train
    batches = list(image_dataset(train, None, batch_size=8, shuffle=False).as_numpy_iterator())
    streamed = np.concatenate(batches)
    assert streamed.shape == (len(train), 32, 32, 3)
    for index in (0, len(train) // 2, len(train) - 1):
        expected = decode_image(train.paths[index], 32)
        if expected is not None:
            assert np.array_equal(streamed[index], expected)
    truncated = [i for i, key in enumerate(train.keys) if key == "class1/truncated.jpg"]
    if truncated:  # the checksum order put it in the training split: it is counted, and not trained on
        assert train.failed == set(truncated)
        labelled = list(image_dataset(train, train.labels, batch_size=8, shuffle=True).as_numpy_iterator())
        assert sum(len(y) for _, y in labelled) == len(train) - 1


def test_prediction_keeps_one_output_per_file(folder):
    from vggedge.backend.keras_env import keras

    data = load_folder(folder, 32, eval_samples=10, calibration_samples=5, progress=False)
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    outputs = predict_images(model, data.train, batch_size=7)
    assert outputs.shape == (len(data.train), 3)
    first = decode_image(data.train.paths[0], 32)
    assert np.allclose(outputs[0], first.reshape(-1, 3).mean(axis=0), atol=1e-3)
