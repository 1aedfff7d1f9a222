"""The one rule from a picture to a model's input, as cameras and phones make pictures.

Used by training, evaluation and calibration (``optimize``), ``predict`` and ``Classifier`` alike, so a model
is fed on the device exactly as it was measured:

- EXIF orientation applied (a phone stores a portrait photo sideways and says so in a tag);
- 16-bit and other high-bit-depth images scaled to 8 bits, not clipped (Pillow's ``convert("RGB")`` clips);
- transparency composited onto white, palette, LA and CMYK converted to RGB;
- a large JPEG decoded at a reduced scale (Pillow's ``draft``) when the target is much smaller: the same
  bilinear resize follows, from fewer pixels;
- fitted to (size, size) by the run's resize policy (:data:`RESIZE_MODES`): ``stretch`` (the whole picture,
  its aspect ratio changed), ``center-crop`` (the largest centred square) or ``letterbox`` (the whole picture on
  a black square); bilinear; raw uint8 pixels.

A file that cannot be read (not an image, truncated, past Pillow's decompression-bomb limit) raises
:class:`UnreadableImage` naming the file and the reason; :func:`decode_image` turns it into ``None`` plus the
reason for folders, which skip such files and say so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vggedge.core.errors import DataError

RESIZE_MODES = ("stretch", "center-crop", "letterbox")
READ_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class UnreadableImage(DataError):
    """An image file that cannot be decoded: the message names the file and why."""


def reason(error: BaseException) -> str:
    """Why Pillow could not read a file, in a few words."""
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
        with Image.open(path) as image:
            if image.format == "JPEG" and min(image.size) > 2 * size:
                image.draft("RGB", (2 * size, 2 * size))  # decode at 1/2, 1/4 or 1/8 scale: never below 2x target
            return model_pixels(image, size, resize)
    except READ_ERRORS as error:
        raise UnreadableImage(f"{path}: {reason(error)}") from None


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
        with Image.open(path) as image:
            return None if image.size[0] > 0 and image.size[1] > 0 else "an image of no pixels"
    except READ_ERRORS as error:
        return reason(error)


def model_pixels(image: Image.Image, size: int, resize: str = "stretch") -> np.ndarray:
    """A decoded picture as the model's input: upright, 8 bits, RGB on white, fitted to (size, size)."""
    image = ImageOps.exif_transpose(image) or image
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


def eight_bits(image: Image.Image) -> Image.Image:
    """High-bit-depth grayscale (``I;16*``, ``I``, ``F``) scaled to 8 bits over its depth, not clipped at 255."""
    if image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64) / 257.0
    elif image.mode == "I":
        values = np.asarray(image, dtype=np.float64)
        values = values / 257.0 if values.max(initial=0) > 255 else values  # a 16-bit PNG opens as "I"
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        values = values * 255.0 if values.max(initial=0) <= 1.0 else values
    else:
        return image
    return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8))  # mode L
