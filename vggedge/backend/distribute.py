"""Where fine-tuning runs: one device, every local GPU, or several machines — chosen once per command.

TensorFlow's own strategies, no scheduler of vggedge's:

- one device (TensorFlow's default placement: the first GPU where there is one) when there is one
  device to train on: figures identical to a run that knows nothing of distribution;
- ``MirroredStrategy`` over every local GPU when there are several (``--replicas N`` takes fewer);
  on a machine without GPUs, ``--replicas N`` makes N logical CPU devices, which runs the same
  distributed code path (for checking a setup; it is not faster);
- ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` describes a cluster: every worker runs the same
  ``vggedge optimize`` command, trains in lock-step, and only the chief (worker 0) writes reports.

Both choices have to be made before TensorFlow initialises its devices (logical devices and the
cluster's collective ops cannot be configured afterwards), so :func:`start` is called first thing
by the CLI, and everything after receives the :class:`Placement` it returned.

The rules, the same for every fine-tuning step:

- **batch**: a recipe's ``batch_size`` is the batch of one replica; the global batch, the one an
  optimizer step averages over, is ``batch_size × replicas``. An epoch is still one pass over the
  training images, so it has ``replicas`` times fewer steps.
- **learning rate**: ``learning_rate × √replicas``. Every step trains with Adam, whose update size does
  not grow with the gradient's; for adaptive optimizers the square-root rule (not the linear rule
  of SGD) keeps the noise of an update per image the same when the batch grows.
- **input**: every worker shuffles the same index list with the same seed, cuts it into global
  batches (the last, partial one is dropped, so every worker runs the same number of steps: a
  worker with one batch more would wait forever in a collective), and decodes only its own slice.
"""

from __future__ import annotations

import dataclasses
import json
import math

from vggedge.backend.keras_env import tf
from vggedge.core.errors import UserError
from vggedge.core.report import Training

BATCH_RULE = "global batch = recipe batch_size x replicas; epochs unchanged"
LEARNING_RATE_RULE = "learning_rate x sqrt(replicas) (Adam)"


@dataclasses.dataclass(frozen=True)
class Batching:
    """How one fine-tune's images are batched under a placement."""

    per_replica: int
    global_batch: int
    steps_per_epoch: int
    images_per_epoch: int  # what one epoch trains on: every image on one device, full global batches when distributed


@dataclasses.dataclass(frozen=True)
class Placement:
    """The strategy every fine-tuning step builds, compiles and trains its model under."""

    strategy: tf.distribute.Strategy
    name: str  # "one device", "MirroredStrategy" or "MultiWorkerMirroredStrategy"
    replicas: int  # replicas in sync, over all workers
    workers: int = 1
    worker_index: int = 0
    devices: tuple[str, ...] = ()

    @property
    def distributed(self) -> bool:
        return self.replicas > 1 or self.workers > 1

    @property
    def is_chief(self) -> bool:
        """The worker that writes reports (worker 0); every worker trains."""
        return self.worker_index == 0

    def learning_rate(self, rate: float) -> float:
        return rate * math.sqrt(self.replicas)

    def batching(self, samples: int, batch_size: int) -> Batching:
        """Per-replica and global batch and optimizer steps per epoch for ``samples`` images.

        One device keeps a last partial batch (as every earlier vggedge version did); a distributed
        run drops it so all workers step together, and shrinks the per-replica batch when there are
        fewer images than one global batch."""
        if not self.distributed:
            return Batching(batch_size, batch_size, math.ceil(samples / batch_size), samples)
        per_replica = max(1, min(batch_size, samples // self.replicas))
        global_batch = per_replica * self.replicas
        steps = samples // global_batch
        return Batching(per_replica, global_batch, steps, steps * global_batch)

    def describe(self) -> Training:
        """The report's ``recipe.training`` section."""
        return Training(
            strategy=self.name,
            replicas=self.replicas,
            workers=self.workers,
            devices=list(self.devices),
            batch_rule=BATCH_RULE if self.distributed else None,
            learning_rate_rule=LEARNING_RATE_RULE if self.distributed else None,
        )


def one_device() -> Placement:
    """TensorFlow's default strategy: what every step uses unless told otherwise."""
    return Placement(tf.distribute.get_strategy(), "one device", 1)


def start(replicas: int | None = None, tf_config: str | None = None) -> Placement:
    """Choose and create the strategy, before TensorFlow has initialised its devices.

    ``replicas``: local replicas asked for (None: every local GPU, or one device without GPUs);
    ``tf_config``: the ``TF_CONFIG`` environment variable, if set (read by the CLI)."""
    if tf_config:
        if replicas is not None:
            raise UserError("--replicas is for one machine; with TF_CONFIG every worker trains on all its GPUs")
        return _multi_worker(tf_config)
    gpus = tf.config.list_physical_devices("GPU")
    wanted = replicas if replicas is not None else max(1, len(gpus))
    if wanted == 1:
        return one_device()
    if gpus:
        if wanted > len(gpus):
            raise UserError(f"--replicas {wanted} asks for more GPUs than this machine has ({len(gpus)})")
        devices = [f"/gpu:{i}" for i in range(wanted)]
    else:
        _split_cpu(wanted)
        devices = [device.name for device in tf.config.list_logical_devices("CPU")][:wanted]
    strategy = tf.distribute.MirroredStrategy(devices)
    return Placement(strategy, "MirroredStrategy", strategy.num_replicas_in_sync, devices=tuple(devices))


def _split_cpu(count: int) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        raise UserError(
            f"--replicas {count} on the CPU must be set before TensorFlow starts: run it as its own command"
        ) from None


def _multi_worker(tf_config: str) -> Placement:
    try:
        config = json.loads(tf_config)
        workers = list(config["cluster"]["worker"])
        task_index = int(config["task"]["index"])
        if config["task"]["type"] not in ("worker", "chief") or task_index < 0:
            raise ValueError(f"task {config['task']}")
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"TF_CONFIG is not a cluster description ({error}): it needs cluster.worker (host:port list) "
            "and task (type, index)"
        ) from None
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError) as error:
        raise UserError(f"TF_CONFIG: could not start the worker: {str(error).splitlines()[0]}") from None
    resolver = strategy.cluster_resolver
    index = int(resolver.task_id) if resolver.task_type == "worker" else 0
    chiefs = len(config["cluster"].get("chief", []))
    if resolver.task_type == "worker":
        index += chiefs  # a separate chief, when the cluster names one, is worker 0
    devices = tuple(d for d in strategy.extended.worker_devices)
    return Placement(
        strategy,
        "MultiWorkerMirroredStrategy",
        strategy.num_replicas_in_sync,
        workers=len(workers) + chiefs,
        worker_index=index,
        devices=devices,
    )
