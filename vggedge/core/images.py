"""The one rule from a picture to a model's input, as cameras and phones make pictures.

Used by training, evaluation and calibration (``optimize``), ``predict`` and ``Classifier`` alike, so a model
is fed on the device exactly as it was measured:

- EXIF orientation applied (a phone stores a portrait photo sideways and says so in a tag);
- 16-bit and other high-bit-depth images scaled to 8 bits, not clipped (Pillow's ``convert("RGB")`` clips);
- transparency composited onto white, palette, LA and CMYK converted to RGB;
- read small: a large JPEG decoded at a reduced scale (Pillow's ``draft``), any other picture averaged down
  (box filter; nearest for palettes) to about twice the target *before* any conversion, so no full-size copy is
  ever made; the same bilinear resize follows, from fewer pixels;
- at most :data:`MAX_DECODED_BYTES` decoded: a picture that would take more is refused from its header, before
  decoding (Pillow's own limit, ~179 Mpx, lets a 13000x13000 PNG through and its conversions cost gigabytes);
- fitted to (size, size) by the run's resize policy (:data:`RESIZE_MODES`): ``stretch`` (the whole picture,
  its aspect ratio changed), ``center-crop`` (the largest centred square) or ``letterbox`` (the whole picture on
  a black square); bilinear; raw uint8 pixels.

A file that cannot be read (not a regular file, not an image, truncated, too large) raises
:class:`UnreadableImage` naming the file and the reason; :func:`decode_image` turns it into ``None`` plus the
reason for folders, which skip such files and say so.
"""

from __future__ import annotations

import math
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vggedge.core.errors import DataError
from vggedge.core.formatting import printable

RESIZE_MODES = ("stretch", "center-crop", "letterbox")
READ_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)

# The most memory one picture may take decoded, before it is reduced (Pillow holds RGB, RGBA, CMYK, I and F in
# 4 bytes a pixel, 16-bit grey in 2, L and palettes in 1): 256 MiB admits an 8192x8192 RGB picture (64 Mpx, past
# any phone's default output) on a 4 GB Raspberry Pi with room for the model. Reading a picture at the limit
# peaks near 256 MiB + the interpreter (tests/test_images.py measures it); a larger one is refused from its header.
MAX_DECODED_BYTES = 256 * 2**20
ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transpose that makes the picture upright (the EXIF 2.3 table, as Pillow applies it)
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class UnreadableImage(DataError):
    """An image file that cannot be decoded: the message names the file and why."""


class TooLarge(ValueError):
    """A picture whose decoded pixels would take more than :data:`MAX_DECODED_BYTES`."""


def reason(error: BaseException) -> str:
    """Why Pillow could not read a file, in a few words."""
    if isinstance(error, TooLarge):
        return str(error)
    if isinstance(error, Image.DecompressionBombError):
        return "larger than Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS)"
    if isinstance(error, UnidentifiedImageError):
        return "not an image Pillow recognises"
    if isinstance(error, FileNotFoundError):
        return "no such file"
    text = str(error).splitlines()[0][:120] if str(error).strip() else type(error).__name__
    return f"cannot be decoded ({text})"


def read_pixels(path: Path | str, size: int, resize: str = "stretch") -> np.ndarray:
    """The file as the model's (size, size, 3) uint8 RGB input, or :class:`UnreadableImage`."""
    try:
        with opened(path, size) as image:
            return model_pixels(image, size, resize)
    except READ_ERRORS as error:
        raise UnreadableImage(f"{printable(path)}: {reason(error)}") from None


def opened(path: Path | str, size: int) -> Image.Image:
    """The picture opened lazily (header only), JPEG set to decode small, refused when not a regular file or when
    its decoded pixels would pass :data:`MAX_DECODED_BYTES`. Use as a context manager."""
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or a device would block or never end
        raise ValueError("not a regular file")
    with warnings.catch_warnings():  # Pillow warns past ~89 Mpx; the limit below is the one that applies
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(path)
    try:
        if image.format == "JPEG" and min(image.size) > 2 * size:
            image.draft("RGB", (2 * size, 2 * size))  # decode at 1/2, 1/4 or 1/8 scale: never below 2x target
        check_decoded_size(image)
    except BaseException:
        image.close()
        raise
    return image


def decoded_bytes(image: Image.Image) -> int:
    """What ``image``'s pixels take in memory once decoded, from its header."""
    width, height = image.size
    per_pixel = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4
    return width * height * per_pixel


def check_decoded_size(image: Image.Image) -> None:
    """:class:`TooLarge` when decoding ``image`` would pass :data:`MAX_DECODED_BYTES`."""
    needed = decoded_bytes(image)
    if needed > MAX_DECODED_BYTES:
        width, height = image.size
        raise TooLarge(
            f"too large: {width}x{height} pixels ({image.mode}) take {needed / 2**20:.0f} MiB decoded, over the "
            f"{MAX_DECODED_BYTES / 2**20:.0f} MiB vggedge reads (vggedge.core.images.MAX_DECODED_BYTES)"
        )


def decode_image(path: Path | str, size: int, resize: str = "stretch") -> np.ndarray | None:
    """RGB uint8 (size, size, 3), or None when the file cannot be decoded (see :func:`read_pixels`)."""
    try:
        return read_pixels(path, size, resize)
    except UnreadableImage:
        return None


def readable_header(path: Path | str) -> str | None:
    """None when Pillow recognises the file as an image of a size it will decode (header only: ~0.1 ms), else why
    not."""
    try:
        with opened(path, 1 << 30) as image:  # no draft: the size as stored
            return None if image.size[0] > 0 and image.size[1] > 0 else "an image of no pixels"
    except READ_ERRORS as error:
        return reason(error)


def model_pixels(image: Image.Image, size: int, resize: str = "stretch") -> np.ndarray:
    """A decoded picture as the model's input: reduced, upright, 8 bits, RGB on white, fitted to (size, size)."""
    check_decoded_size(image)
    orientation = image.getexif().get(ORIENTATION_TAG)  # read before reducing: the copy carries no EXIF
    image = reduced(image, size)
    if orientation in UPRIGHT:
        image = image.transpose(UPRIGHT[orientation])
    image = eight_bits(image)
    if image.mode in ("RGBA", "LA", "P", "PA") or (image.mode == "RGB" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(fitted(image.convert("RGB"), size, resize), dtype=np.uint8)


def fitted(rgb: Image.Image, size: int, resize: str = "stretch") -> Image.Image:
    """``rgb`` as a (size, size) square by the resize policy (bilinear)."""
    if resize not in RESIZE_MODES:
        raise DataError(f"resize must be one of {', '.join(RESIZE_MODES)}. Received: {resize!r}")
    width, height = rgb.size
    if resize == "center-crop" and width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        rgb = rgb.crop((left, top, left + side, top + side))
    elif resize == "letterbox" and width != height:
        side = max(width, height)
        square = Image.new("RGB", (side, side), (0, 0, 0))
        square.paste(rgb, ((side - width) // 2, (side - height) // 2))
        rgb = square
    return rgb if rgb.size == (size, size) else rgb.resize((size, size), Image.Resampling.BILINEAR)


def reduced(image: Image.Image, size: int) -> Image.Image:
    """``image`` averaged down by a whole factor to no less than twice ``size`` on its short side (the reduction
    JPEG's draft makes while decoding), in its own mode: a palette, 1-bit or colour-keyed picture by nearest
    pixel, since averaging palette indices or a transparent colour would invent colours."""
    factor = min(image.size) // (2 * size)
    if factor < 2:
        return image
    width, height = image.size
    target = (math.ceil(width / factor), math.ceil(height / factor))
    exact = image.mode in ("1", "P", "PA") or "transparency" in image.info
    return image.resize(target, Image.Resampling.NEAREST if exact else Image.Resampling.BOX)


def eight_bits(image: Image.Image) -> Image.Image:
    """High-bit-depth grayscale (``I;16*``, ``I``, ``F``) scaled to 8 bits over its depth, not clipped at 255
    (integer arithmetic for the integer modes)."""
    if image.mode.startswith("I;16"):
        values = (np.asarray(image).astype(np.int64) + 128) // 257  # round(v / 257): 65535 -> 255
    elif image.mode == "I":
        values = np.asarray(image).astype(np.int64)
        values = (values + 128) // 257 if values.max(initial=0) > 255 else values  # a 16-bit PNG may open as "I"
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        values = values * 255.0 if values.max(initial=0) <= 1.0 else values
    else:
        return image
    return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8))  # mode L
