"""The device side is a package of its own, and nothing in it needs TensorFlow: every module under
``vggedge/device/`` (and the CLI that runs them) imports in a process where TensorFlow cannot be imported."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import textwrap

from no_tensorflow import BLOCK_TENSORFLOW

import vggedge.comparison
import vggedge.core
import vggedge.device

IMPORT_ALL = BLOCK_TENSORFLOW + textwrap.dedent(
    """
    import importlib

    for name in sys.argv[1:]:
        importlib.import_module(name)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras"))
    workstation = sorted(m for m in sys.modules if m.split(".")[:2] in (
        ["vggedge", p] for p in ("backend", "models", "recipe", "export", "steps", "auto", "run", "api")))
    assert not leaked and not workstation, (leaked, workstation)
    print(len(sys.argv) - 1)
    """
)


def device_modules() -> list[str]:
    """Every module of the TensorFlow-free packages: the device side, the core under it, the comparison."""
    return sorted(
        f"{package.__name__}.{m.name}"
        for package in (vggedge.device, vggedge.core, vggedge.comparison)
        for m in pkgutil.iter_modules(package.__path__)
    )


def test_every_device_module_imports_without_tensorflow():
    modules = device_modules()
    assert {
        "vggedge.device.runtime",
        "vggedge.device.bench",
        "vggedge.device.server",
        "vggedge.device.check",
        "vggedge.device.environment",
        "vggedge.device.summary",
        "vggedge.core.report",
        "vggedge.core.data",
        "vggedge.comparison.table",
    } <= set(modules)
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *modules, "vggedge.cli.bench", "vggedge.cli.compare"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip()) == len(modules) + 2


def test_the_import_contracts_hold_and_catch_a_device_module_importing_the_workstation(tmp_path):
    """`lint-imports` (the contracts in pyproject.toml) passes on the code as it is, and fails, naming the import,
    on a copy where a device module imports a TensorFlow-side one."""
    import shutil
    from pathlib import Path

    root = Path(__file__).parents[1]
    lint = Path(sys.executable).with_name("lint-imports")
    kept = subprocess.run([lint], cwd=root, capture_output=True, text=True, timeout=120)
    assert kept.returncode == 0, kept.stdout[-2000:]
    assert "0 broken" in kept.stdout
    copy = tmp_path / "project"
    shutil.copytree(root / "vggedge", copy / "vggedge", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(root / "pyproject.toml", copy)
    broken_module = copy / "vggedge" / "device" / "summary.py"
    broken_module.write_text(broken_module.read_text() + "\nfrom vggedge.export.convert import convert  # noqa\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(copy)}
    broken = subprocess.run([lint], cwd=copy, capture_output=True, text=True, timeout=120, env=env)
    assert broken.returncode != 0
    assert "vggedge.device.summary -> vggedge.export.convert" in broken.stdout
