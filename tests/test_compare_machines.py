"""compare never averages or ranks across machines that share a label: devices are told apart by CPU features."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import vggedge

EXAMPLE = Path(__file__).parents[1] / "examples" / "sample-int8"


def test_two_machines_called_vm_are_two_devices(tmp_path):
    for machine, features, p50 in (("a", None, None), ("b", ["avx2", "fma"], 9.5)):
        shutil.copytree(EXAMPLE, tmp_path / machine / "int8")
        if features:
            path = tmp_path / machine / "int8" / "report.json"
            report = json.loads(path.read_text())
            report["environment"]["cpu_features"] = features
            report["result"]["latency_ms"]["p50"] = p50
            path.write_text(json.dumps(report))
    comparison = vggedge.compare(tmp_path)
    devices = {row["device"] for row in comparison.rows}
    assert len(devices) == 2 and all(device.startswith("vm (x86_64: ") for device in devices), devices
    baselines = [row for row in comparison.rows if row["recipe"].startswith("baseline")]
    assert len(baselines) == 2  # one per machine, never one averaged over both
    fastest = [r for r in comparison.recommendations if r.goal == "fastest"]
    assert len(fastest) == 2 and {r.device for r in fastest} == devices  # one pick per machine


def test_one_machine_keeps_its_plain_label(tmp_path):
    shutil.copytree(EXAMPLE, tmp_path / "int8")
    assert {row["device"] for row in vggedge.compare(tmp_path).rows} == {"vm"}
