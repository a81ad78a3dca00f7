"""The pipeline's ``train`` stage: fit every model of ``models=[...]`` and record how training went.

For each model: build it from the prepared dataset (and the item text vectors of
the embed stage, when present), train it (Ray Train ``TorchTrainer`` with
``train.engine=ray``, this process with ``local``), write its ``curves`` and
``grad_stats`` rows, and leave its best-on-validation weights at
``<checkpoint root>/<model>/best_model.pt``, a self-contained file that
:func:`recsys.train.checkpoint.load_model` rebuilds.

After the stage, ``run.models`` maps model name to a
:class:`~recsys.run_state.TrainedModelRecord`: that file and how training went
(status, where, best_epoch, best_val, epochs, steps). A
model whose training diverged (NaN/Inf) does not fail the run: its status says
``diverged`` and where, and its best weights before that are kept.

Rows travel back to this process (they ride inside the checkpoints on the Ray
path) and are written here, inside the stage's transaction, so a failed stage
publishes none of them and a resumed worker never writes a step twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from recsys.errors import ConfigError
from recsys.models.base import Recommender
from recsys.models.registry import build_model, check_model_names
from recsys.run_state import RunState, TrainedModelRecord
from recsys.storage import is_uri, join
from recsys.train.checkpoint import FitState, LocalCheckpoints, local_model_dir, publish_model, save_model
from recsys.train.config import TrainConfig, check_train_config
from recsys.train.data import TrainingData
from recsys.train.loop import Distributed, fit
from recsys.train.probes import Telemetry
from recsys.embed.tokens import with_token_cache

log = logging.getLogger(__name__)


@dataclass
class TrainedModel:
    name: str
    path: Path                  # best_model.pt
    state: FitState
    telemetry: Telemetry

    def summary(self) -> dict:
        best = self.state.best_metric
        return {"status": self.state.status, "where": self.state.where, "best_epoch": self.state.best_epoch,
                "best_val": None if best == float("-inf") else best, "epochs": self.state.epoch,
                "steps": self.state.step, "path": str(self.path)}

    def record(self) -> TrainedModelRecord:
        """What the run state keeps of this model: its file and how training went."""
        best = self.state.best_metric
        return TrainedModelRecord(self.path, status=self.state.status, where=self.state.where,
                                  best_epoch=self.state.best_epoch, best_val=None if best == float("-inf") else best,
                                  epochs=self.state.epoch, steps=self.state.step)


def new_model(name: str, model_config, data: TrainingData, item_text: np.ndarray | None, seed: int) -> Recommender:
    """Model ``name`` initialised from ``seed`` (the same weights in every process)."""
    torch.manual_seed(seed)
    return build_model(name, model_config, data.model_inputs(item_text))


def pick_device(use_gpu: bool | None) -> torch.device:
    """CUDA when asked for (``True``) or available (``None``), else CPU."""
    if use_gpu is True and not torch.cuda.is_available():
        raise ConfigError("train.use_gpu is true but no CUDA device is visible", setting="train.use_gpu",
                          hint="set train.use_gpu=null (auto) or false")
    return torch.device("cuda" if use_gpu is not False and torch.cuda.is_available() else "cpu")


def train_local(name: str, model_config, data: TrainingData, item_text: np.ndarray | None, cfg: TrainConfig,
                out_dir: str | Path) -> TrainedModel:
    """Train in this process; epoch checkpoints under ``out_dir/checkpoints``, best weights in ``out_dir``.

    >>> import tempfile
    >>> from recsys.models.mf import MFConfig
    >>> data = TrainingData.from_arrays([0, 0, 1], [0, 1, 2], n_users=2, n_items=3, val_users=[1], val_items=[0])
    >>> trained = train_local("mf", MFConfig(dim=4), data, None, TrainConfig(epochs=2, engine="local"),
    ...                       tempfile.mkdtemp())
    >>> trained.state.status, trained.path.name
    ('completed', 'best_model.pt')
    """
    out_dir = Path(out_dir)
    device = pick_device(cfg.use_gpu)
    model = new_model(name, model_config, data, item_text, cfg.seed).to(device)
    store = LocalCheckpoints(out_dir / "checkpoints")

    def save(model, best_state, optimizer, state, telemetry):
        store.save(model, best_state, optimizer.state_dict() if optimizer else None, state, telemetry.state())

    result = fit(model, data, cfg, dist=Distributed(device=device), on_epoch_end=save)
    path = save_model(out_dir, model, result.best_state)
    return TrainedModel(name, path, result.state, result.telemetry)


def train_model(name: str, model_config, data: TrainingData, item_text: np.ndarray | None, cfg: TrainConfig,
                out_dir: str | Path) -> TrainedModel:
    """Train with the configured engine; models without training always run in this process."""
    check_train_config(cfg)
    if cfg.engine == "ray" and new_model(name, model_config, data, item_text, cfg.seed).trainable:
        from recsys.train._ray import train_with_ray

        return train_with_ray(name, model_config, data, item_text, cfg, out_dir)
    trained = train_local(name, model_config, data, item_text, cfg, local_model_dir(out_dir, name))
    publish_model(trained.path, out_dir)          # a URI out_dir (shared storage) gets the best weights too
    return trained


def checkpoint_root(run: RunState) -> Path | str:
    """``train.checkpoint_dir``, or ``<report dir>/checkpoints``; a URI (shared storage) stays a string."""
    configured = run.cfg.train.checkpoint_dir or join(getattr(run.writer, "location", run.writer.run_dir),
                                                      "checkpoints")
    return configured if is_uri(configured) else Path(configured).resolve()


def load_item_text(run: RunState) -> np.ndarray | None:
    """The embed stage's vectors aligned with item_idx, or None when the embed stage has not run."""
    if run.embedding is None:
        return None
    from recsys.embed.catalogue import load_item_vectors

    return load_item_vectors(run.embedding.vectors_path, run.prepared.item_map())


def stage_train(run: RunState) -> None:
    """Train ``run.cfg.models`` on ``run.prepared``; write curves and grad_stats; publish the model files."""
    run.require("prepared", "train")
    cfg = run.cfg
    check_model_names(list(cfg.models))
    check_train_config(cfg.train)
    data = TrainingData.from_prepared(run.prepared)
    item_text = load_item_text(run)
    root = checkpoint_root(run)
    dataset = run.prepared.name
    models = {}
    for name in cfg.models:
        log.info("training %s on %s (%s interactions, %s items)", name, dataset, f"{data.nnz:,}", f"{data.n_items:,}")
        model_config = with_token_cache(cfg.model.for_model(name), run.prepared, cfg)   # finetune: its token cache
        started = time.monotonic()
        trained = train_model(name, model_config, data, item_text, cfg.train, join(root, name))
        seconds = time.monotonic() - started
        run.writer.write("curves", [dict(row, dataset=dataset) for row in trained.telemetry.curves])
        run.writer.write("grad_stats", [dict(row, dataset=dataset) for row in trained.telemetry.grad_stats])
        models[name] = replace(trained.record(), seconds=seconds)
        level = logging.WARNING if trained.state.status == "diverged" else logging.INFO
        log.log(level, "%s: %s", name, trained.summary())
    run.models = models
