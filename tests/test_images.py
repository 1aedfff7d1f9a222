"""Images as cameras and phones make them, through the one decoding rule that `optimize --data`, `predict` and
`Classifier` share: EXIF orientation, 16-bit depth, CMYK, palette, a decompression bomb and a truncated file."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vggedge.core.data import load_folder
from vggedge.core.errors import DataError
from vggedge.core.images import read_pixels

SIZE = 32


def upright() -> np.ndarray:
    """A picture that is not symmetric: a white top-left quarter on black, 64x48."""
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:24, :32] = 255
    return pixels


def expected(pixels: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).resize((SIZE, SIZE), Image.Resampling.BILINEAR))


def phone_jpeg(path: Path) -> Path:
    """The picture stored sideways with EXIF orientation 6 (rotate 90° clockwise to view), as phones write it."""
    stored = Image.fromarray(upright()).transpose(Image.Transpose.ROTATE_90)  # what the sensor wrote
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, quality=100, exif=exif)
    return path


def png16(path: Path) -> Path:
    """A 16-bit grayscale PNG: a ramp over the whole 16-bit range."""
    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    Image.fromarray(ramp).save(path)  # uint16: mode I;16
    return path


def bomb_png(path: Path, width: int = 14000, height: int = 13000) -> Path:
    """A PNG whose header claims 14000x13000 pixels (past Pillow's decompression-bomb limit), a few bytes long."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    )
    return path


def odd_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    cmyk = folder / "cmyk.jpg"
    Image.fromarray(upright()).convert("CMYK").save(cmyk)
    palette = folder / "palette.png"
    Image.fromarray(upright()).convert("P").save(palette)
    whole = folder / "whole.jpg"
    Image.fromarray(upright()).save(whole)
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    return {
        "phone": phone_jpeg(folder / "phone.jpg"),
        "png16": png16(folder / "deep.png"),
        "bomb": bomb_png(folder / "bomb.png"),
        "cmyk": cmyk,
        "palette": palette,
        "truncated": truncated,
    }


def test_a_phone_photo_is_turned_upright(tmp_path):
    pixels = read_pixels(phone_jpeg(tmp_path / "phone.jpg"), SIZE)
    assert np.abs(pixels.astype(int) - expected(upright())).mean() < 6  # JPEG's rounding only
    assert pixels[4, 4].mean() > 200 and pixels[28, 28].mean() < 50  # the white quarter top-left, as shot


def test_a_16_bit_image_is_scaled_not_clipped(tmp_path):
    pixels = read_pixels(png16(tmp_path / "deep.png"), SIZE)
    assert pixels.min() < 10 and 100 < np.median(pixels) < 155 and pixels.max() > 245  # the ramp, not all white
    assert (pixels == 255).mean() < 0.05


def test_cmyk_and_palette_read_as_rgb(tmp_path):
    files = odd_files(tmp_path / "odd")
    for name in ("cmyk", "palette"):
        pixels = read_pixels(files[name], SIZE)
        assert pixels.shape == (SIZE, SIZE, 3) and np.abs(pixels.astype(int) - expected(upright())).mean() < 8, name


@pytest.mark.parametrize(("name", "words"), [("bomb", "decompression-bomb limit"), ("truncated", "cannot be decoded")])
def test_an_unreadable_file_is_refused_naming_it_and_why(tmp_path, name, words):
    files = odd_files(tmp_path / "odd")
    with pytest.raises(DataError, match=words) as raised:
        read_pixels(files[name], SIZE)
    assert str(files[name]) in str(raised.value)


def test_a_folder_skips_what_it_cannot_read_and_keeps_the_rest(tmp_path):
    root = tmp_path / "data"
    for label in ("a", "b"):
        odd_files(root / label)
    dataset = load_folder(root, SIZE, eval_samples=100, calibration_samples=0, progress=False, keep_all=True)
    assert len(dataset.eval) == 10 and dataset.skipped == 4  # five read per class; bomb and truncated skipped
    only_bad = tmp_path / "bad" / "a"
    only_bad.mkdir(parents=True)
    bomb_png(only_bad / "bomb.png")
    with pytest.raises(DataError, match=r"could be decoded \(e.g. .*bomb.png: larger than Pillow"):
        load_folder(tmp_path / "bad", SIZE, progress=False)


def test_predict_and_the_classifier_read_them_the_same_way(tflite_bytes, tmp_path, cli):
    from vggedge.device.classifier import Classifier

    model = tmp_path / "m.tflite"
    model.write_bytes(tflite_bytes)
    files = odd_files(tmp_path / "odd")
    classifier = Classifier(model)
    size = classifier.input_size
    assert np.array_equal(classifier.pixels(files["phone"]), read_pixels(files["phone"], size))
    assert np.array_equal(classifier.pixels(files["png16"]), read_pixels(files["png16"], size))
    with pytest.raises(DataError, match="decompression-bomb"):
        classifier.predict(files["bomb"])
    done = cli("predict", model, tmp_path / "odd")
    assert done.code == 0, done.err
    assert "skipped 2 files that could not be read" in done.err and "bomb.png: larger than Pillow" in done.err
    assert "Traceback" not in done.err and done.out.count(": ") >= 4
    single = cli("predict", model, files["bomb"])
    assert single.code == 2 and "bomb.png: larger than Pillow's decompression-bomb limit" in single.err


@pytest.mark.slow
def test_optimize_reads_odd_files_counts_what_it_skipped_and_records_its_resize(
    tiny_h5, small_digits_dir, tmp_path, cli
):
    import json
    import shutil

    data = tmp_path / "data"
    shutil.copytree(small_digits_dir, data)
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        odd_files(folder)
    done = cli(
        "optimize", "--recipe", "fp16", "--model", tiny_h5, "--data", data, "--out", tmp_path / "out", "-q",
        "--runs", "2", "--eval-samples", "100", "--resize", "center-crop",
    )  # fmt: skip
    assert done.code in (0, 1), done.err
    assert "Traceback" not in done.err
    report = json.loads((tmp_path / "out" / "fp16" / "report.json").read_text())
    assert report["dataset"]["skipped"] == 20  # the bomb and the truncated file of each of the ten classes
    # The resize policy, recorded where a replay and an app read it
    from vggedge.core.labels import resize_in_model

    assert report["dataset"]["resize"] == "center-crop"
    assert 'resize = "center-crop"' in (tmp_path / "out" / "fp16" / "recipe.toml").read_text()
    assert resize_in_model(tmp_path / "out" / "fp16" / "model.tflite") == "center-crop"


def test_one_classifier_shared_by_threads_answers_each_the_same(tflite_bytes, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from vggedge.device.classifier import Classifier

    model = tmp_path / "m.tflite"
    model.write_bytes(tflite_bytes)
    classifier = Classifier(model, threads=1)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(8)]
    alone = classifier.predict_batch(images, top=3)
    assert all(isinstance(label, str) and type(score) is float for answer in alone for label, score in answer)
    with ThreadPoolExecutor(4) as pool:
        shared = list(pool.map(lambda i: classifier.predict(images[i % 8], top=3), range(400)))
    assert shared == [alone[i % 8] for i in range(400)]
    assert classifier.latency_ms(runs=5) > 0


@pytest.mark.parametrize(
    ("resize", "corner", "middle"),
    [("stretch", 255, 0), ("center-crop", 255, 0), ("letterbox", 0, 0)],
)
def test_the_resize_policies_fit_a_wide_picture_as_named(tmp_path, resize, corner, middle):
    """A 96x48 picture, white on its left third: stretch keeps it all (white at the left edge), a centre crop cuts
    the left 24 columns (white still at the edge: it spans 32), a letterbox pads with black above and below."""
    wide = np.zeros((48, 96, 3), np.uint8)
    wide[:, :32] = 255
    path = tmp_path / "wide.png"
    Image.fromarray(wide).save(path)
    pixels = read_pixels(path, SIZE, resize)
    assert pixels.shape == (SIZE, SIZE, 3)
    assert pixels[0, 0].mean() == pytest.approx(corner, abs=2)
    assert pixels[SIZE // 2, SIZE - 1].mean() == pytest.approx(middle, abs=2)
    if resize == "center-crop":
        assert (pixels[SIZE // 2, :, 0] > 128).sum() == pytest.approx(SIZE * 8 / 48, abs=1)  # 8 of the 48 kept
    if resize == "letterbox":
        assert pixels[SIZE // 2, 0].mean() > 250  # the picture itself, between the black bars


def test_the_model_carries_its_resize_policy_to_the_classifier(tflite_bytes, tmp_path):
    from vggedge.device.classifier import Classifier
    from vggedge.export.metadata import add_classifier_metadata

    model = tmp_path / "m.tflite"
    model.write_bytes(add_classifier_metadata(tflite_bytes, "m", "m", [str(i) for i in range(10)], "letterbox"))
    assert Classifier(model).resize == "letterbox"
    assert Classifier(model, resize="stretch").resize == "stretch"  # overridable
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(tflite_bytes)
    assert Classifier(plain).resize == "stretch"
    with pytest.raises(DataError, match="Received: 'squash'"):
        read_pixels(phone_jpeg(tmp_path / "p.jpg"), SIZE, "squash")
