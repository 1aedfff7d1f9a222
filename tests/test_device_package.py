"""The device side is a package of its own, and nothing in it needs TensorFlow: every module under
``vggedge/device/`` (and the CLI that runs them) imports in a process where TensorFlow cannot be imported."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import textwrap

from no_tensorflow import BLOCK_TENSORFLOW

import vggedge.device

IMPORT_ALL = BLOCK_TENSORFLOW + textwrap.dedent(
    """
    import importlib

    for name in sys.argv[1:]:
        importlib.import_module(name)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras"))
    workstation = sorted(m for m in sys.modules if m.startswith(("vggedge.pipeline", "vggedge.convert",
                                                                 "vggedge.models", "vggedge.steps")))
    assert not leaked and not workstation, (leaked, workstation)
    print(len(sys.argv) - 1)
    """
)


def device_modules() -> list[str]:
    return sorted(f"vggedge.device.{m.name}" for m in pkgutil.iter_modules(vggedge.device.__path__))


def test_every_device_module_imports_without_tensorflow():
    modules = device_modules()
    assert {
        "vggedge.device.runtime",
        "vggedge.device.bench",
        "vggedge.device.server",
        "vggedge.device.check",
        "vggedge.device.environment",
        "vggedge.device.summary",
    } <= set(modules)
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *modules, "vggedge.cli.bench", "vggedge.cli.compare"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip()) == len(modules) + 2
