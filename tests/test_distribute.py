"""Fine-tuning under tf.distribute: the batch and learning-rate rules, each worker's slice of the data,
and real distributed runs of a recipe — MirroredStrategy over two logical CPU devices, and two worker
processes of a MultiWorkerMirroredStrategy cluster on loopback — held to the single-device run's figures.

The distributed runs are child processes (conftest's `distributed_runs`, two of the suite's long runs): devices and a
cluster's collectives are fixed when TensorFlow starts, which in this test process happened long ago.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from helpers import PRUNE_SPREAD_PTS
from vggedge.backend.distribute import BATCH_RULE, LEARNING_RATE_RULE, Placement, one_device, start
from vggedge.backend.keras_env import tf
from vggedge.backend.training import replica_index_batches
from vggedge.core.errors import UserError


def placement(replicas: int, workers: int = 1) -> Placement:
    return Placement(tf.distribute.get_strategy(), "test", replicas, workers)


def test_one_device_batches_as_before():
    plan = one_device().batching(1070, 32)
    assert (plan.per_replica, plan.global_batch, plan.steps_per_epoch) == (32, 32, 34)  # last batch partial
    assert one_device().learning_rate(1e-4) == 1e-4
    assert not one_device().distributed and one_device().is_chief
    assert one_device().describe().batch_rule is None  # nothing scaled, nothing to state


def test_global_batch_and_learning_rate_scale_with_replicas():
    two = placement(2, workers=2)
    plan = two.batching(1070, 32)
    assert (plan.per_replica, plan.global_batch, plan.steps_per_epoch) == (32, 64, 16)  # 1070 // 64: full only
    assert two.learning_rate(1e-4) == pytest.approx(1e-4 * math.sqrt(2))
    small = placement(4).batching(50, 32)  # fewer images than one global batch: the per-replica batch shrinks
    assert (small.per_replica, small.global_batch, small.steps_per_epoch) == (12, 48, 1)
    training = two.describe()
    assert (training.replicas, training.workers) == (2, 2)
    assert (training.batch_rule, training.learning_rate_rule) == (BATCH_RULE, LEARNING_RATE_RULE)


def test_each_worker_decodes_its_own_slice_of_every_global_batch():
    """Two workers, one replica each: together they cover each epoch's full global batches exactly once,
    in the same number of steps, and the next epoch comes in another order."""
    count, two = 100, placement(2, workers=2)
    plan = two.batching(count, 16)  # global 32: three full batches, 4 images left for no one this epoch
    epochs = 2
    per_worker = [
        [
            batch.numpy().tolist()
            for batch in replica_index_batches(count, plan, 7, worker, 2, 2).take(plan.steps_per_epoch * epochs)
        ]
        for worker in (0, 1)
    ]
    assert all(len(batch) == 16 for batches in per_worker for batch in batches)
    first = [i for batches in per_worker for batch in batches[: plan.steps_per_epoch] for i in batch]
    second = [i for batches in per_worker for batch in batches[plan.steps_per_epoch :] for i in batch]
    assert len(first) == len(set(first)) == 96  # no image twice, none decoded by two workers
    assert set(first) <= set(range(count)) and set(second) <= set(range(count))
    assert first != second  # reshuffled per epoch
    again = [b.numpy().tolist() for b in replica_index_batches(count, plan, 7, 0, 2, 2).take(plan.steps_per_epoch)]
    assert again == per_worker[0][: plan.steps_per_epoch]  # same seed, same order: what keeps workers in step


def test_cluster_description_errors_are_one_line():
    with pytest.raises(UserError, match="TF_CONFIG is not a cluster description"):
        start(None, "{not json")
    with pytest.raises(UserError, match="cluster.worker"):
        start(None, json.dumps({"task": {"type": "worker", "index": 0}}))
    with pytest.raises(UserError, match="--replicas is for one machine"):
        start(2, json.dumps({"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 0}}))


def test_no_gpu_means_one_device():
    assert start(None, None).name == "one device"
    assert start(1, None).name == "one device"


def assert_like_single_device(report: dict, single: dict, strategy: str, workers: int) -> None:
    training = report["recipe"]["training"]
    assert (training["strategy"], training["replicas"], training["workers"]) == (strategy, 2, workers)
    assert training["learning_rate_rule"] == LEARNING_RATE_RULE
    step = report["recipe"]["steps"][0]
    assert step["fine_tuned"] and step["sparsity_reached"] >= 0.89  # the pruning masks were updated under the strategy
    assert report["result"]["status"] == "ok"  # verified, and within 2 points of its own baseline
    drop = (single["result"]["top1"] - report["result"]["top1"]) * 100
    assert drop <= PRUNE_SPREAD_PTS, f"{strategy}: {drop:.2f} points below the single-device run"


@pytest.mark.slow
def test_prune_on_two_logical_cpu_devices_matches_one_device(all_runs, distributed_runs):
    report = json.loads((distributed_runs / "mirrored" / "prune" / "report.json").read_text())
    single = json.loads((all_runs / "prune" / "report.json").read_text())
    assert single["recipe"]["training"]["strategy"] == "one device"
    assert_like_single_device(report, single, "MirroredStrategy", workers=1)
    assert report["recipe"]["training"]["devices"] == ["/device:CPU:0", "/device:CPU:1"]


@pytest.mark.slow
def test_prune_on_two_workers_on_loopback_matches_one_device(all_runs, distributed_runs):
    """Two processes, one TF_CONFIG cluster (tests/cluster.py): both train in lock-step, only the chief writes."""
    assert not (distributed_runs / "worker").exists()  # the other worker wrote nothing
    assert "worker 2 of 2: fine-tuned in step with the chief" in (distributed_runs / "worker.log").read_text()
    report = json.loads((distributed_runs / "chief" / "prune" / "report.json").read_text())
    single = json.loads((all_runs / "prune" / "report.json").read_text())
    assert_like_single_device(report, single, "MultiWorkerMirroredStrategy", workers=2)


def test_replica_slices_stay_aligned_with_their_targets():
    """The slice each replica decodes carries the targets of the same images (labels gathered by index)."""
    from vggedge.backend.training import _decoder, _with_targets
    from vggedge.core.data import Split

    images = np.arange(20, dtype=np.uint8).reshape(20, 1, 1, 1).repeat(3, axis=3)
    split = Split(images, np.arange(20), [str(i) for i in range(20)])
    plan = placement(2, workers=2).batching(20, 4)
    indices = replica_index_batches(20, plan, 3, 1, 2, 2).take(plan.steps_per_epoch)
    for pixels, targets in _with_targets(indices.map(_decoder(split)), np.arange(20) * 10):
        assert (pixels.numpy()[:, 0, 0, 0].astype(int) * 10 == targets.numpy()).all()


@pytest.mark.parametrize(("replicas", "expected"), [(1, 140), (2, 128)])
def test_the_training_bar_counts_images(replicas, expected, monkeypatch):
    """The fine-tuning bar runs in images (its rate is images/s): every image on one device, the full
    global batches only when distributed (the partial one is dropped)."""
    import vggedge.backend.training
    from vggedge.backend.training import TrainingProgress

    monkeypatch.setattr(vggedge.backend.training, "on_terminal", lambda: True)  # a bar, as on a terminal
    where = one_device() if replicas == 1 else placement(replicas)
    plan = where.batching(70, 32)
    bar = TrainingProgress("test", plan, 2)
    bar.on_train_begin()
    for _ in range(2):
        for batch in range(plan.steps_per_epoch):
            bar.on_train_batch_end(batch, {"loss": 0.5})
    bar.on_train_end()
    task = bar.bar.tasks[0]
    assert task.total == task.completed == expected


def test_a_bad_cluster_description_is_one_line_before_any_work(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1"]}}')
    result = cli("optimize", "--recipe", "int8", "--out", tmp_path / "out")
    assert result.code == 2 and "TF_CONFIG is not a cluster description" in result.err
    assert "Traceback" not in result.err and not (tmp_path / "out").exists()
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 0}}')
    result = cli("optimize", "--recipe", "int8", "--replicas", "2", "--out", tmp_path / "out")
    assert result.code == 2 and "--replicas is for one machine" in result.err
