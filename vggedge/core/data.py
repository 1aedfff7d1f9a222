"""Labelled images from a folder (one subfolder per class), split deterministically.

No TensorFlow here: the device-side benchmark uses this module too. Images are decoded with
Pillow, converted to RGB (grayscale and alpha included) and resized to the model's input size;
they stay raw uint8 pixels because preprocessing is part of every exported model.

Two layouts: one folder of class subfolders, split by a checksum of each path into evaluation,
calibration and training images; or separate training and evaluation folders (``--eval-data``, or
the Keras tutorials' ``DIR/train`` + ``DIR/validation`` or ``DIR/val``), where every evaluation
image is used and calibration and training come from the training folder.
"""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from vggedge.core import defaults
from vggedge.core.errors import DataError
from vggedge.core.images import decode_image, model_pixels, readable_header  # noqa: F401 - the rule
from vggedge.core.report import DatasetSection

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
TRAIN_FOLDER = "train"
EVAL_FOLDERS = ("validation", "val")


@dataclasses.dataclass
class Split:
    """Raw RGB pixels (N, H, W, 3) uint8, integer labels and a stable key per image (its relative path)."""

    images: np.ndarray
    labels: np.ndarray
    keys: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def load_many(self, indices: list[int]) -> list[np.ndarray | None]:
        return [self.images[index] for index in indices]

    def first(self, count: int) -> Split:
        return Split(self.images[:count], self.labels[:count], self.keys[:count])


@dataclasses.dataclass
class FileSplit:
    """Images left on disk, decoded when a batch needs them (the training split): memory does not grow
    with the number of images. Same keys, labels and decoding rule as :class:`Split`; a file that turns
    out not to decode is counted in ``failed`` and left out of training (the run's notes say how many)."""

    paths: list[Path]
    labels: np.ndarray
    keys: list[str]
    size: int
    failed: set[int] = dataclasses.field(default_factory=set)
    missing: set[int] = dataclasses.field(default_factory=set)  # gone from disk since the split was made
    resize: str = "stretch"  # the run's resize policy (vggedge.core.images.RESIZE_MODES)

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int) -> np.ndarray | None:
        pixels = decode_image(self.paths[index], self.size, self.resize)
        if pixels is None:
            (self.failed if self.paths[index].exists() else self.missing).add(index)
        return pixels

    def require_still_there(self) -> None:
        """Refuse to go on (one line) when training files vanished mid-run (a folder moved, a disk
        unmounted): a fine-tune on whatever is left would be a silently different run."""
        if self.missing:
            first = self.paths[min(self.missing)]
            raise DataError(
                f"{len(self.missing)} training images vanished from disk during the run (first: {first}): "
                "was the data folder moved, deleted or unmounted? Run again once it is back"
            )

    def load_many(self, indices: list[int]) -> list[np.ndarray | None]:
        return [self.load(index) for index in indices]

    def first(self, count: int) -> FileSplit:
        """The first ``count`` files, still on disk."""
        return FileSplit(self.paths[:count], self.labels[:count], self.keys[:count], self.size, resize=self.resize)

    def split_off(self, count: int) -> tuple[Split, FileSplit]:
        """(the first ``count`` images decoded, the rest still on disk): a held-apart split carved from the
        training images in their fixed checksum order (``--recipe auto`` ranks its candidates on it)."""
        head = self.first(count)
        rest = FileSplit(self.paths[count:], self.labels[count:], self.keys[count:], self.size, resize=self.resize)
        return head.decoded(), rest

    def decoded(self) -> Split:
        """Every image decoded into memory (small data sets and tests; training streams instead)."""
        loaded = [(self.load(i), i) for i in range(len(self))]
        kept = [(pixels, i) for pixels, i in loaded if pixels is not None]
        images = np.stack([p for p, _ in kept]) if kept else np.zeros((0, self.size, self.size, 3), np.uint8)
        return Split(images, self.labels[[i for _, i in kept]], [self.keys[i] for _, i in kept])


@dataclasses.dataclass
class Dataset:
    name: str
    class_names: list[str]
    train: Split | FileSplit
    calibration: Split
    eval: Split
    skipped: int
    eval_source: str = "split"  # "split": checksum split of one folder; else the evaluation folder's path
    resize: str = "stretch"  # how every image was fitted to the model's input (vggedge.core.images)

    def describe(self) -> DatasetSection:
        """The report's ``dataset`` section."""
        return DatasetSection(
            name=self.name,
            classes=len(self.class_names),
            train_samples=len(self.train),
            eval_samples=len(self.eval),
            calibration_samples=len(self.calibration),
            skipped=self.skipped,
            eval_source=self.eval_source,
            resize=self.resize,
        )


def inside(folder: Path, root: Path) -> bool:
    """False for a symbolic link that leaves ``root`` (``ln -s .. up`` would make the data folder's parent a class
    and read the data folder twice); a linked picture file inside a class is read as usual."""
    if not folder.is_symlink():
        return True
    return folder.resolve().is_relative_to(root.resolve()) and folder.resolve() != root.resolve()


def list_images(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """Class names (sorted subfolder names, as ``image_dataset_from_directory``) and (file, label) pairs."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist: pass --data DIR with one subfolder per class")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and inside(p, root))
    files = [
        (f, label)
        for label, d in enumerate(class_dirs)
        for f in sorted(d.rglob("*"))
        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise DataError(
            f"data folder {root} has no JPEG or PNG images in class subfolders: "
            "lay it out as DIR/<class name>/<image>.jpg"
        )
    return [d.name for d in class_dirs], files


def stable_order(keys: list[str]) -> np.ndarray:
    """A shuffled order that depends only on the file names (not on the OS's listing order or a RNG)."""
    return np.argsort([zlib.crc32(k.encode()) for k in keys], kind="stable")


def tutorial_layout(root: Path) -> tuple[Path, Path] | None:
    """(train, evaluation) folders when ``root`` is laid out as ``train/`` + ``validation/`` (or ``val/``)."""
    root = Path(root)
    train = root / TRAIN_FOLDER
    evaluation = next((root / name for name in EVAL_FOLDERS if (root / name).is_dir()), None)
    return (train, evaluation) if train.is_dir() and evaluation is not None else None


def load_dataset(
    root: Path,
    size: int,
    eval_samples: int | None = None,
    calibration_samples: int = defaults.CALIBRATION_SAMPLES,
    eval_root: Path | None = None,
    progress: bool = True,
    resize: str = "stretch",
) -> Dataset:
    """``--data`` (and ``--eval-data``): one folder split by checksum, or training and evaluation folders.

    ``eval_samples``: from one folder, the evaluation images (default ``defaults.EVAL_SAMPLES``, at most
    half); from an evaluation folder, all of its images by default, or the first ``eval_samples`` in the
    checksum order (evaluation images are decoded into memory: a 50,000-image validation set need not be)."""
    layout = tutorial_layout(root) if eval_root is None else (Path(root), Path(eval_root))
    if layout is None:
        return load_folder(
            root, size, eval_samples or defaults.EVAL_SAMPLES, calibration_samples, progress=progress, resize=resize
        )
    train_root, eval_root = layout
    training = load_folder(
        train_root, size, 0, calibration_samples, progress=progress, name=Path(root).name, resize=resize
    )
    names, evaluation, skipped = load_all(eval_root, size, progress=progress, limit=eval_samples, resize=resize)
    if names != training.class_names:
        raise DataError(
            f"the evaluation folder {eval_root} has classes {names} but the training folder {train_root} has "
            f"{training.class_names}: give both the same class subfolders"
        )
    return dataclasses.replace(
        training, eval=evaluation, skipped=training.skipped + skipped, eval_source=str(eval_root)
    )


def has_image_header(path: Path) -> bool:
    """Whether Pillow recognises the file as an image it will decode (reads the header only: ~0.1 ms)."""
    return readable_header(path) is None


def load_folder(
    root: Path,
    size: int,
    eval_samples: int = defaults.EVAL_SAMPLES,
    calibration_samples: int = defaults.CALIBRATION_SAMPLES,
    name: str | None = None,
    progress: bool = True,
    keep_all: bool = False,
    resize: str = "stretch",
) -> Dataset:
    """Load a class-per-folder dataset and split it into eval / calibration / train.

    The split is a fixed function of the relative file paths: images are ordered by a checksum of
    their path, the first ``eval_samples`` (at most half of them) are for evaluation, the next
    ``calibration_samples`` for int8 calibration, the rest for fine-tuning. ``keep_all`` puts every
    image (at most ``eval_samples``) in the evaluation split (a device benchmark on a folder of evaluation images).

    Only the evaluation and calibration images are decoded here; the training images stay on disk
    (:class:`FileSplit`) and are decoded batch by batch, so memory does not grow with the data set.
    Files Pillow cannot recognise are skipped up front (counted in ``skipped``), as before.
    """
    from vggedge.core.progress import track

    root = Path(root)
    class_names, files = list_images(root)
    keys = [f.relative_to(root).as_posix() for f, _ in files]
    order = stable_order(keys)
    if keep_all:
        readable = list(order)  # every image is decoded anyway: no separate header pass
    else:
        readable = [
            i
            for i in track(order, "Checking images", total=len(order), enabled=progress)
            if has_image_header(files[i][0])
        ]
    wanted = min(eval_samples, len(readable)) if keep_all else None
    if wanted is None:
        n_eval = min(eval_samples, max(1, len(readable) // 2))
        wanted = n_eval + min(calibration_samples, len(readable) - n_eval)
    images, labels, kept, position = [], [], [], 0
    with_progress = track(readable, "Reading evaluation images", total=wanted, enabled=progress)
    for position, i in enumerate(with_progress, start=1):  # noqa: B007 - position is read after the loop
        pixels = decode_image(files[i][0], size, resize)
        if pixels is not None:
            images.append(pixels)
            labels.append(files[i][1])
            kept.append(keys[i])
        if len(kept) == wanted:
            break
    if not images:
        example = files[order[0]][0] if len(order) else root
        why = readable_header(example) or "cannot be decoded"
        raise DataError(f"none of the {len(files)} images in {root} could be decoded (e.g. {example}: {why})")
    all_images = np.stack(images)
    all_labels = np.array(labels, dtype=np.int64)
    n_eval = len(kept) if keep_all else min(eval_samples, max(1, len(readable) // 2), len(kept))
    n_cal = len(kept) - n_eval
    rest = readable[position:] if not keep_all else []

    def part(start: int, stop: int) -> Split:
        return Split(all_images[start:stop], all_labels[start:stop], kept[start:stop])

    train = FileSplit(
        [files[i][0] for i in rest],
        np.array([files[i][1] for i in rest], dtype=np.int64),
        [keys[i] for i in rest],
        size,
        resize=resize,
    )
    return Dataset(
        name=name or root.name,
        class_names=class_names,
        eval=part(0, n_eval),
        calibration=part(n_eval, n_eval + n_cal),
        train=train,
        skipped=len(files) - len(readable) + position - len(kept),
        resize=resize,
    )


def load_all(
    root: Path, size: int, progress: bool = True, limit: int | None = None, resize: str = "stretch"
) -> tuple[list[str], Split, int]:
    """Every image of a folder (or the first ``limit`` in the checksum order) as one evaluation split:
    (class names, split, skipped count)."""
    dataset = load_folder(
        root, size, eval_samples=limit or 10**9, calibration_samples=0, progress=progress, keep_all=True, resize=resize
    )
    return dataset.class_names, dataset.eval, dataset.skipped


def save_split(split: Split, class_names: list[str], root: Path) -> None:
    """Write a split as PNG files in the class-per-folder layout, keeping each image's key."""
    for pixels, key in zip(split.images, split.keys, strict=True):
        target = Path(root) / key
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(target)
