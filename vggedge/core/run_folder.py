"""A run folder is one thing: written whole under a temporary name, marked complete, swapped into place.

Files written atomically one by one are not enough: two runs into one ``--out`` interleaved their files (one
run's report beside the other's model), and Ctrl-C after ``model.tflite`` was replaced left a new model beside
the previous run's complete-looking report. So:

- a run writes its recipe's folder as ``<out>/.staging-<recipe>-<random>/<recipe>`` (:func:`staged`);
- :func:`publish` writes the completion mark, :data:`MANIFEST` (every file's size and SHA-256), last, then swaps the
  folder into place with two renames while SIGINT, SIGTERM and SIGHUP are deferred, so an interrupt leaves either the
  previous complete folder or the new one;
- :func:`output_lock` holds an exclusive lock (``flock``) on ``<out>`` for the whole run: a second run into the
  same folder is refused in one line instead of interleaving;
- :func:`clean_stale` removes what a killed run left (staging folders, the converter's scratch SavedModels) and puts
  back a folder a kill caught between the two renames;
- ``bench``, ``compare`` and :class:`~vggedge.Classifier` call :func:`incomplete_reason` before trusting a folder.

Standard library only: the device side checks folders too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from vggedge.core.atomic import write_text
from vggedge.core.errors import UserError
from vggedge.core.formatting import printable
from vggedge.core.progress import log_line

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "vggedge.manifest/1"
STAGING_PREFIX = ".staging-"
REPLACED_PREFIX = ".replaced-"
SCRATCH_PREFIXES = (STAGING_PREFIX, ".vggedge-savedmodel-", ".remedies")
HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)}


class IncompleteRunFolder(UserError):
    """A run folder whose files are not the ones its completion mark lists (or that has no mark)."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    """:data:`MANIFEST` in ``folder``: the size and SHA-256 of every file under it, written last."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name != MANIFEST)
    entries = {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256(p)} for p in files}
    write_text(Path(folder) / MANIFEST, json.dumps({"schema": MANIFEST_SCHEMA, "files": entries}, indent=1) + "\n")


def incomplete_reason(folder: Path) -> str | None:
    """Why ``folder`` is not a complete run folder, or None when it is (or is not a run folder at all: a lone model
    copied to a board). A folder with a model and a report but no mark was cut short by an older vggedge."""
    folder = Path(folder)
    mark = folder / MANIFEST
    if not mark.is_file():
        if (folder / "report.json").is_file() and (folder / "model.tflite").is_file():
            return f"{MANIFEST} is missing: the run that wrote it was cut short (or predates the mark)"
        return None
    try:
        files = json.loads(mark.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"{MANIFEST} cannot be read ({type(error).__name__})"
    for name, entry in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != entry.get("bytes"):
            return f"{name} is {size:,} bytes where the run wrote {entry.get('bytes'):,}"
        if sha256(path) != entry.get("sha256"):
            return f"{name} is not the file the run wrote (its SHA-256 differs)"
    return None


def check_complete(folder: Path) -> None:
    """:class:`IncompleteRunFolder` naming the folder and why, unless :func:`incomplete_reason` finds nothing."""
    why = incomplete_reason(folder)
    if why:
        raise IncompleteRunFolder(f"{printable(folder)} is not a complete run folder: {why}; run optimize again")


@dataclasses.dataclass
class Staging:
    """Where a recipe's folder is written before it is published: ``root / name`` becomes ``out / name``."""

    out: Path
    name: str
    root: Path
    published: bool = False

    @property
    def folder(self) -> Path:
        return self.root / self.name

    @property
    def target(self) -> Path:
        return self.out / self.name

    def publish(self) -> Path:
        """:func:`publish` the staged folder to its place; returns the report's path."""
        publish(self.folder, self.target, self)
        return self.target / "report.json"


@contextlib.contextmanager
def staged(out: Path, name: str) -> Iterator[Staging]:
    """A fresh staging root inside ``out`` for the recipe ``name``; removed on the way out whatever happened, and
    an interrupt says which run ``out/name`` now holds."""
    root = Path(out) / f"{STAGING_PREFIX}{name}-{secrets.token_hex(4)}"
    root.mkdir(parents=True)
    staging = Staging(Path(out), name, root)
    try:
        yield staging
    except KeyboardInterrupt:
        if staging.published:
            kept = "holds this run, complete"
        else:
            kept = "keeps the previous complete run" if staging.target.is_dir() else "was not written"
        log_line(f"interrupted: {printable(staging.target)} {kept}; nothing half-written is left")
        raise
    finally:
        shutil.rmtree(root, ignore_errors=True)


def publish(staged_folder: Path, target: Path, staging: Staging | None = None) -> Path:
    """Mark ``staged_folder`` complete and swap it into ``target``'s place whole, removing the previous folder, with
    SIGINT, SIGTERM and SIGHUP held meanwhile (an interrupt is raised after, the swap done); returns ``target``."""
    write_manifest(staged_folder)
    target = Path(target)
    replaced = target.parent / f"{REPLACED_PREFIX}{target.name}-{secrets.token_hex(4)}"
    with signals_deferred():
        if target.exists():
            os.rename(target, replaced)
        os.rename(staged_folder, target)
        if staging is not None:
            staging.published = True
        shutil.rmtree(replaced, ignore_errors=True)
    return target


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP held for the block and acted on after it, as they would have been. (Python-level
    handlers: blocking a signal in one thread does not hold it in a process whose other threads, TensorFlow's,
    take it.) Outside the main thread, where handlers cannot be set, nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {number: signal.signal(number, lambda n, _frame: caught.append(n)) for number in HELD_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in caught:
            handler = previous[number]
            if callable(handler):
                handler(number, None)  # Python's SIGINT handler raises KeyboardInterrupt here
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), number)  # the default action (SIGTERM: end the process), now


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """An exclusive lock on the folder ``out`` itself (created if need be, removed again if the run leaves it
    empty) for a whole run; a second run into the same folder gets one line instead of interleaving."""
    try:
        import fcntl
    except ImportError:  # no POSIX locks (Windows): runs are not guarded against each other
        yield
        return
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    handle = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another vggedge run is writing to {printable(out)}: wait for it to finish or pass another --out"
            ) from None
        yield
    finally:
        os.close(handle)  # closing releases the lock
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only when empty: a run that wrote nothing leaves nothing


def clean_stale(out: Path) -> list[str]:
    """Under :func:`output_lock`: remove what killed runs left in ``out`` (staging folders, scratch SavedModels,
    remedies' folders) and put back a folder a kill caught mid-swap. Returns what was done, for a log line."""
    out = Path(out)
    done = []
    if not out.is_dir():
        return done
    for path in sorted(out.iterdir()):
        if path.name.startswith(REPLACED_PREFIX) and path.is_dir():
            name = path.name[len(REPLACED_PREFIX) :].rsplit("-", 1)[0]
            if not (out / name).exists():
                os.rename(path, out / name)  # the kill came between the two renames: the old folder goes back
                done.append(f"put back {name}")
                continue
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"removed {path.name}")
        elif path.name.startswith(SCRATCH_PREFIXES) and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"removed {path.name}")
    return done
