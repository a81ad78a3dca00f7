"""Ray Train: the same training loop under DDP in a ``TorchTrainer``, checkpointed every epoch.

The driver builds :class:`~recsys.train.data.TrainingData` once and puts it (and
the item text vectors) in the object store; every worker builds the same model
from the same seed, wraps it with ``prepare_model`` (DDP when there is more than
one worker) and runs :func:`recsys.train.loop.fit` on its share of each batch.
Rank 0 reports a checkpoint every epoch (latest weights, best weights, optimizer,
progress and the telemetry rows so far); when a worker dies, ``FailureConfig``
restarts the group and every worker resumes from the latest checkpoint
(``ray.train.get_checkpoint()``). The driver reads the final checkpoint and
copies its ``best_model.pt`` out.

``out_dir`` may be a URI (``s3://bucket/run/checkpoints/mf``): Ray Train then keeps
the checkpoints there (``storage_path`` on that filesystem), which every worker
node reaches; the best weights are uploaded beside them and kept in a local
scratch directory for this process. A local ``out_dir`` is shared storage only on
one machine (or an NFS mount at the same path on every node).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from recsys.errors import RecsysError
from recsys.report.writer import check_run_id
from recsys.storage import is_uri, join, resolve
from recsys.train.checkpoint import BEST_FILE, load_checkpoint, local_model_dir, publish_model, save_checkpoint
from recsys.train.config import TrainConfig
from recsys.train.data import TrainingData
from recsys.models.registry import ensure_registered, get_spec
from recsys.train.loop import Distributed, fit, step_module
from recsys.train.probes import Telemetry
from recsys.train.stage import TrainedModel, new_model

log = logging.getLogger(__name__)


def worker_loop(config: dict) -> None:
    """``train_loop_per_worker``: build, wrap, resume if a checkpoint exists, fit, report every epoch."""
    import ray
    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(config["threads"])
    cfg: TrainConfig = config["train"]
    data, item_text = ray.get(config["data"]), ray.get(config["item_text"])
    device = ray.train.torch.get_device()
    ensure_registered(config["name"], config.get("plugin"))      # a plugin model: import it on this worker
    model = new_model(config["name"], config["model_config"], data, item_text, cfg.seed)
    forward = ray.train.torch.prepare_model(step_module(model),
                                            parallel_strategy_kwargs={"forward_sync_buffers": False})
    resume = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            resume = load_checkpoint(directory)
        log.warning("%s: rank %d resumes after epoch %d from %s", config["name"], rank, resume.state.epoch,
                    checkpoint.path)

    def report(model, best_state, optimizer, state, telemetry):
        metrics = {"epoch": state.epoch, "step": state.step, "status": state.status,
                   "best_val": state.best_metric if state.best_metric > float("-inf") else None}
        if rank != 0:
            ray.train.report(metrics)          # every worker reports (a barrier); rank 0 brings the checkpoint
            return
        with tempfile.TemporaryDirectory() as directory:
            save_checkpoint(directory, model, best_state, optimizer.state_dict() if optimizer else None, state,
                            telemetry.state())
            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(directory))

    fit(model, data, cfg, forward=forward, dist=Distributed(rank, world, device), resume=resume,
        on_epoch_end=report)


def worker_resources(cfg: TrainConfig) -> tuple[bool, float]:
    """``(use_gpu, cpus_per_worker)`` from the settings and the cluster's resources.

    CPUs: ``train.cpus_per_worker``, else the cluster's CPUs split evenly over the
    workers (the V2 trainer's controller holds no CPU), at most 8 each.
    """
    import ray

    resources = ray.cluster_resources()
    use_gpu = cfg.use_gpu if cfg.use_gpu is not None else resources.get("GPU", 0) >= cfg.num_workers
    cpus = cfg.cpus_per_worker or max(0.5, min(8.0, resources.get("CPU", 1.0) / cfg.num_workers))
    return bool(use_gpu), float(cpus)


def _unwrap(error: Exception) -> Exception:
    """The RecsysError a worker raised, if that is why training failed."""
    failures = getattr(error, "worker_failures", None) or {}
    for failure in failures.values():
        seen = failure
        for _ in range(10):
            if isinstance(seen, RecsysError):
                return seen
            seen = getattr(seen, "cause", None) or seen.__cause__
            if seen is None:
                break
    return error


def train_with_ray(name: str, model_config, data: TrainingData, item_text: np.ndarray | None, cfg: TrainConfig,
                   out_dir: str | Path, *, run_name: str | None = None) -> TrainedModel:
    """Train with a Ray Train ``TorchTrainer`` of ``train.num_workers`` workers; best weights to ``out_dir``."""
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if run_name is not None:
        check_run_id(run_name, setting="run name")
    storage_path, storage_fs = str(Path(out_dir).resolve() / "ray"), None
    if is_uri(out_dir):               # shared storage: every worker node writes its checkpoints there
        storage_fs, storage_path = resolve(join(out_dir, "ray"), setting="train.checkpoint_dir")
    local_dir = local_model_dir(out_dir, name)
    use_gpu, cpus = worker_resources(cfg)
    trainer = TorchTrainer(
        worker_loop,
        train_loop_config={"name": name, "plugin": get_spec(name).target, "model_config": model_config, "train": cfg,
                           "data": ray.put(data),
                           "item_text": ray.put(item_text), "threads": max(1, int(cpus))},
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cpus}),
        run_config=RunConfig(name=run_name or name, storage_path=storage_path, storage_filesystem=storage_fs,
                             failure_config=FailureConfig(max_failures=cfg.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
    )
    try:
        result = trainer.fit()
    except Exception as exc:  # noqa: BLE001 - our own errors surface as themselves
        unwrapped = _unwrap(exc)
        if unwrapped is not exc:
            raise unwrapped from None
        raise
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train finished training {name} without a checkpoint")
    with result.checkpoint.as_directory() as directory:
        snapshot = load_checkpoint(directory)
        local_dir.mkdir(parents=True, exist_ok=True)
        path = Path(shutil.copy(Path(directory) / BEST_FILE, local_dir / BEST_FILE))
    publish_model(path, out_dir)
    return TrainedModel(name, path, snapshot.state, Telemetry.from_state(snapshot.telemetry))
