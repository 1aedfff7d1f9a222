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


def big_png(path: Path, width: int, height: int, kind: str) -> Path:
    """A ``width`` x ``height`` PNG written row by row (never held whole, so a test can make one of 169 Mpx in a
    second): ``rgb`` 8-bit, ``palette`` with a transparent first entry, ``grey16`` 16-bit. Rows alternate black and
    a ramp ``(7 * i) % 256``, so the whole picture's mean is about 63.75 on 8 bits (RGB and grey)."""
    depth, colour, per_pixel = {"rgb": (8, 2, 3), "palette": (8, 3, 1), "grey16": (16, 0, 2)}[kind]

    def chunk(name: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + name + data + struct.pack(">I", zlib.crc32(name + data))

    extra = chunk(b"PLTE", bytes(range(256)) * 3) + chunk(b"tRNS", b"\x00") if kind == "palette" else b""
    ramp, black = bytes((7 * i) % 256 for i in range(width * per_pixel)), bytes(width * per_pixel)
    packer = zlib.compressobj(1)
    data = b"".join(packer.compress(b"\0" + (ramp if y % 2 else black)) for y in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


PEAK_SCRIPT = """
import json, sys
from vggedge.core.images import read_pixels, UnreadableImage
try:
    pixels = read_pixels(sys.argv[1], 224)
    answer = {"mean": float(pixels.mean())}
except UnreadableImage as error:
    answer = {"refused": str(error)}
# VmHWM, the process's own peak (ru_maxrss keeps the forking parent's peak across exec)
status = open("/proc/self/status").read()
answer["peak_mb"] = int(status.split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps(answer))
"""


def peak_read(path: Path) -> dict:
    """Read ``path`` as a 224-pixel model input in a fresh Python: its answer and the process's peak memory."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# What Python, numpy and Pillow take before any picture (28 MB measured), with room for the allocator
INTERPRETER_MB = 80


@pytest.mark.parametrize(
    ("kind", "width", "height"),
    [("rgb", 13000, 13000), ("palette", 13000, 13000), ("grey16", 13000, 13000), ("rgb", 8000, 8000),
     ("grey16", 11000, 11000)],
)  # fmt: skip
def test_a_picture_under_pillows_limit_is_read_small_or_refused_never_in_gigabytes(tmp_path, kind, width, height):
    """The sub-limit PNGs that took 2.0, 2.8 and 4.5 GB (13000x13000 RGB, palette with transparency, 16-bit grey)
    and two at vggedge's own limit: each is refused from its header or read within the decoded bytes it is allowed
    plus the interpreter, and read right."""
    from vggedge.core.images import MAX_DECODED_BYTES

    answer = peak_read(big_png(tmp_path / f"{kind}.png", width, height, kind))
    assert answer["peak_mb"] < MAX_DECODED_BYTES / 2**20 + INTERPRETER_MB, answer
    if "refused" in answer:
        assert "too large" in answer["refused"] and f"{width}x{height}" in answer["refused"]
    else:
        # the whole picture's average, not a corner of it (a palette's index 0 is transparent: white, where the
        # black rows were; the mean the full-size conversion gave is 191.8)
        assert abs(answer["mean"] - (191.8 if kind == "palette" else 63.75)) < 3, answer
    pixels_allowed = MAX_DECODED_BYTES // (4 if kind == "rgb" else 2 if kind == "grey16" else 1)
    assert ("refused" in answer) == (width * height > pixels_allowed)


def test_a_fifo_or_a_folder_is_refused_not_waited_on(tmp_path):
    import os

    fifo = tmp_path / "camera.fifo"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    for path in (fifo, tmp_path):
        with pytest.raises(DataError, match="not a regular file"):
            read_pixels(path, SIZE)
