"""The training loop, in one process: ``train_epoch``, ``validate`` and ``fit``.

The same functions run under Ray Train (``recsys.train._ray``): there ``forward`` is
the DDP-wrapped model and :class:`Distributed` names this worker's rank, and
nothing else changes. Reproducibility: the model is initialised from ``seed``;
each epoch's example order depends on ``(seed, epoch)`` and its dropout and
negative sampling on ``(seed, epoch, rank)``, so a single-worker CPU run, resumed
or not, is bit-for-bit repeatable.

A step whose loss or gradient is not finite is not applied: training stops with
status ``diverged``, ``where`` says what went non-finite, the step's gradient
statistics are recorded, and the last checkpoint keeps the last good weights.

>>> from recsys.models.registry import ModelSettings, build_model
>>> from recsys.train.config import TrainConfig
>>> data = TrainingData.from_arrays([0, 0, 1, 1], [0, 1, 2, 3], n_users=2, n_items=4,
...                                 val_users=[0], val_items=[2])
>>> _ = torch.manual_seed(0)
>>> model = build_model("mf", ModelSettings().mf, data.model_inputs())
>>> result = fit(model, data, TrainConfig(epochs=2, batch_size=2, engine="local"))
>>> result.state.status, result.state.epoch, result.state.step
('completed', 2, 4)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed

from recsys.models.base import Recommender
from recsys.models.contract import checked_scorer, training_kind
from recsys.train.batching import (Examples, epoch_examples, epoch_order, examples_per_batch, steps_per_epoch,
                                   worker_batches)
from recsys.train.checkpoint import FitState, Snapshot
from recsys.train.config import TrainConfig, check_train_config, for_model
from recsys.train.data import TrainingData
from recsys.train.losses import Loss
from recsys.train.probes import Probes, Telemetry, first_nonfinite, peak_memory_mb
from recsys.train.validation import ndcg_sum

log = logging.getLogger(__name__)


@dataclass
class Distributed:
    """This worker's place in a data-parallel group (``world_size`` 1: a single process)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    def all_sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over every worker (identity for one worker)."""
        if self.world_size == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(tensor)
        return tensor.tolist()


@dataclass
class EpochStats:
    steps: int = 0
    loss_sum: float = 0.0           # this worker's share of the epoch's summed loss (/ global targets)
    examples: int = 0               # examples this worker trained on
    seconds: float = 0.0
    nonfinite: str | None = None    # "loss" or "grad:<layer>" when a step went non-finite
    nonfinite_step: int | None = None


@dataclass
class FitResult:
    state: FitState
    telemetry: Telemetry
    best_state: dict


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam(W) over the trainable parameters, or over ``model.optimizer_groups(train.lr)`` when it has them.

    A group's ``lr`` relative to ``train.lr`` is kept as ``lr_scale`` (the schedule scales every
    group alike) and its optional ``warmup_steps`` ramp it up from 0 (see :func:`group_lr`).
    """
    groups = getattr(model, "optimizer_groups", None)
    params = [p for p in model.parameters() if p.requires_grad] if groups is None else groups(cfg.lr)
    if groups is not None:
        params = [dict(g, lr_scale=g["lr"] / cfg.lr) for g in params if g["params"]]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def learning_rate(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of ``step``: constant, or cosine from ``lr`` to 0 over ``total_steps``.

    >>> cfg = TrainConfig(lr=1.0, lr_schedule="cosine")
    >>> [round(learning_rate(cfg, s, 4), 3) for s in range(5)]
    [1.0, 0.854, 0.5, 0.146, 0.0]
    """
    if cfg.lr_schedule == "constant" or total_steps <= 0:
        return cfg.lr
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))


def group_lr(group: dict, lr: float, step: int) -> float:
    """A parameter group's learning rate at ``step``: the scheduled ``lr`` times its ``lr_scale``,
    ramped linearly over its ``warmup_steps``.

    >>> group_lr({"lr_scale": 0.1, "warmup_steps": 4}, 1e-3, 1), group_lr({}, 1e-3, 1)
    (5e-05, 0.001)
    """
    warmup = group.get("warmup_steps") or 0
    ramp = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    return lr * group.get("lr_scale", 1.0) * ramp


def seed_epoch(seed: int, epoch: int, rank: int = 0) -> torch.Generator:
    """Seed torch's global RNG (dropout) for this epoch and return the negative-sampling generator."""
    value = (seed * 1_000_003 + epoch * 1_009 + rank) % 2**63
    torch.manual_seed(value)
    return torch.Generator().manual_seed(value + 1)


def _copy_state(model: torch.nn.Module) -> dict:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


class OwnLossStep(torch.nn.Module):
    """A model with its own ``loss(batch, generator)`` seen as a module whose ``forward`` is that loss.

    DDP synchronises gradients of what runs inside ``forward``; wrapping the model's loss this
    way lets Ray Train's ``prepare_model`` wrap models that are not dot products.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch, generator: torch.Generator) -> torch.Tensor:
        return self.model.loss(batch, generator)                         # (M,)


def step_module(model: torch.nn.Module) -> torch.nn.Module:
    """What a training step calls (and DDP wraps): the model, or its :class:`OwnLossStep`."""
    return OwnLossStep(model) if training_kind(model) == "loss" else model


def training_step(model: torch.nn.Module, loss_fn: Loss | None, forward: Callable | None = None) -> Callable:
    """``step(batch, generator) -> (M,)`` per-target losses: the model's own loss, or a shared loss of its Output.

    >>> from recsys.models.base import tiny_inputs, Batch
    >>> from recsys.models.registry import ModelSettings, build_model
    >>> model = build_model("mf", ModelSettings().mf, tiny_inputs())
    >>> step = training_step(model, Loss("softmax", model.item_counts))
    >>> step(Batch(torch.tensor([0, 1]), torch.tensor([1, 4])), torch.Generator()).shape
    torch.Size([2])
    """
    if training_kind(model) == "loss":
        module = forward if forward is not None else OwnLossStep(model)
        return lambda batch, generator: module(batch, generator)
    module = forward if forward is not None else model
    return lambda batch, generator: loss_fn(module(batch), generator)


def train_epoch(model: Recommender, loss_fn: Loss, optimizer: torch.optim.Optimizer, examples: Examples,
                cfg: TrainConfig, state: FitState, probes: Probes, generator: torch.Generator, *,
                forward: Callable | None = None, dist: Distributed = Distributed()) -> EpochStats:
    """One pass over ``examples``; advances ``state.step`` and stops early at a non-finite step.

    ``forward``: the (DDP-wrapped) module a step calls: the model, or its :class:`OwnLossStep`.
    """
    step = training_step(model, loss_fn, forward)
    model.train()
    stats = EpochStats()
    started = time.perf_counter()
    params = [p for p in model.parameters() if p.requires_grad]
    order = epoch_order(len(examples.users), cfg.seed, state.epoch)
    per_batch = examples_per_batch(model.example_kind, cfg.batch_size, model.window_length)
    total_steps = cfg.epochs * steps_per_epoch(len(examples.users), per_batch, dist.world_size)
    for batch, total in worker_batches(examples, order, per_batch, dist.rank, dist.world_size):
        batch = batch.to(dist.device)
        for group in optimizer.param_groups:
            group["lr"] = group_lr(group, learning_rate(cfg, state.step, total_steps), state.step)
        optimizer.zero_grad(set_to_none=True)
        losses = step(batch, generator)                                   # (M,)
        loss = losses.sum() * (dist.world_size / max(total, 1))           # DDP averages: global mean gradient
        loss.backward()
        probes.after_backward(state.step, state.epoch)
        grads = [p.grad for p in params if p.grad is not None]
        grad_norm = torch.nn.utils.get_total_norm(grads)                  # all-reduced grads: same on every worker
        bad = not bool(torch.isfinite(grad_norm)) or not bool(torch.isfinite(loss))
        step_loss = loss.detach() / dist.world_size                       # this worker's share of the global mean
        if dist.world_size > 1:                                           # a local loss: decide (and log) together
            flagged, global_loss = dist.all_sum([float(bad), float(step_loss)])
            bad, step_loss = flagged > 0, torch.tensor(global_loss)
        if bad:
            stats.nonfinite, stats.nonfinite_step = first_nonfinite(model, loss), state.step
            probes.record_nonfinite(state.step, state.epoch, stats.nonfinite, float(loss.detach()))
            optimizer.zero_grad(set_to_none=True)
            break
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grads_with_norm_(params, cfg.grad_clip, grad_norm)
        probes.before_update(state.step)
        optimizer.step()
        probes.after_update(state.step, state.epoch)
        probes.step_done(state.step, state.epoch, step_loss, len(batch.users) * dist.world_size,
                         optimizer.param_groups[0]["lr"])
        stats.loss_sum += float(loss.detach()) / dist.world_size
        stats.examples += len(batch.users)
        stats.steps += 1
        state.step += 1
    stats.seconds = time.perf_counter() - started
    return stats


def validate(model: Recommender, data: TrainingData, cfg: TrainConfig, dist: Distributed = Distributed(),
             seen=None) -> float | None:
    """NDCG@``val_k`` on the validation items (training items masked); None without validation data."""
    if data.val.indices.size == 0:
        return None
    seen = seen if seen is not None else data.seen()
    total, count = ndcg_sum(checked_scorer(model), seen, data.val, cfg.val_k, dist.rank, dist.world_size,
                            cfg.val_memory_budget_mb * 2**20)
    total, count = dist.all_sum([total, count])
    return total / count if count else None


def fit(model: Recommender, data: TrainingData, cfg: TrainConfig, *, forward: Callable | None = None,
        dist: Distributed = Distributed(), resume: Snapshot | None = None,
        on_epoch_end: Callable[..., None] | None = None) -> FitResult:
    """Train ``model`` for ``cfg.epochs`` with validation, early stopping and the NaN guard.

    ``on_epoch_end(model, best_state, optimizer, state, telemetry)`` is called after
    every epoch (and once for a model without training); checkpointing lives there.
    ``resume`` continues from a checkpoint's :class:`Snapshot`.
    """
    check_train_config(cfg)
    cfg = for_model(cfg, model.name)                  # train.lr null: the model's own rate
    telemetry = Telemetry.from_state(resume.telemetry) if resume else Telemetry(model.name)
    seen = data.seen()
    if not model.trainable:
        state = FitState(status="completed")
        metric = validate(model, data, cfg, dist, seen)
        if metric is not None:
            telemetry.curve(0, 0, f"val/ndcg@{cfg.val_k}", metric)
            state.best_metric, state.best_epoch, state.val_history = metric, 0, [metric]
        best_state = _copy_state(model)
        if on_epoch_end:
            on_epoch_end(model, best_state, None, state, telemetry)
        return FitResult(state, telemetry, best_state)

    optimizer = make_optimizer(model, cfg)
    state, best_state = FitState(), _copy_state(model)
    if resume:
        model.load_state_dict(resume.model_state)
        if resume.optimizer_state is not None:
            optimizer.load_state_dict(resume.optimizer_state)
        state, best_state = resume.state, resume.best_state
        state.resumed_at.append(state.epoch)
        if state.status == "completed" and state.epoch < cfg.epochs:
            state.status = "running"                                      # asked for more epochs than before
    loss_fn = (Loss(cfg.loss, model.item_counts, cfg.negatives, cfg.negative_sampling)
               if training_kind(model) == "forward" else None)             # a model with its own loss needs none
    examples = epoch_examples(data.indptr, model.example_kind, model.window_length)
    probes = Probes(model, telemetry, log_every=cfg.log_every, probe_every=cfg.probe_every, enabled=cfg.instrument)

    fit_started = time.perf_counter()
    while state.status == "running" and state.epoch < cfg.epochs:
        epoch = state.epoch
        generator = seed_epoch(cfg.seed, epoch, dist.rank)
        probes.seconds = 0.0
        stats = train_epoch(model, loss_fn, optimizer, examples, cfg, state, probes, generator,
                            forward=forward, dist=dist)
        loss_sum, steps = dist.all_sum([stats.loss_sum, stats.steps])
        if stats.nonfinite:
            state.status, state.where = "diverged", f"{stats.nonfinite} at step {stats.nonfinite_step}"
            if on_epoch_end:
                on_epoch_end(model, best_state, optimizer, state, telemetry)
            break
        metric = validate(model, data, cfg, dist, seen)
        state.epoch += 1
        step = max(state.step - 1, 0)
        epoch_curves = getattr(model, "epoch_curves", None)     # models that measure themselves (finetune)
        if epoch_curves is not None and cfg.instrument:
            for name, value in epoch_curves().items():
                telemetry.curve(step, epoch, name, value)
        telemetry.curve(step, epoch, "train/epoch_loss", loss_sum / max(stats.steps, 1))
        telemetry.curve(step, epoch, "epoch_seconds", stats.seconds)
        telemetry.curve(step, epoch, "train/epoch_samples_per_s",
                        stats.examples * dist.world_size / max(stats.seconds, 1e-9))
        telemetry.curve(step, epoch, "instrumentation/share", probes.seconds / max(stats.seconds, 1e-9))
        telemetry.curve(step, epoch, "peak_memory_mb", peak_memory_mb(dist.device))
        # seconds since this process started fitting, at the end of the epoch's validation: differences
        # between epochs are whole epoch cycles (train, validate, the previous epoch's checkpoint)
        telemetry.curve(step, epoch, "time/epoch_end_s", time.perf_counter() - fit_started)
        if metric is None:
            best_state, state.best_epoch = _copy_state(model), epoch
        else:
            telemetry.curve(step, epoch, f"val/ndcg@{cfg.val_k}", metric)
            state.val_history.append(metric)
            if metric > state.best_metric:
                state.best_metric, state.best_epoch, state.bad_epochs = metric, epoch, 0
                best_state = _copy_state(model)
            else:
                state.bad_epochs += 1
                if cfg.patience and state.bad_epochs >= cfg.patience:
                    state.status = "early_stopped"
        if state.status == "running" and state.epoch >= cfg.epochs:
            state.status = "completed"
        if dist.rank == 0:
            log.info("%s epoch %d: loss %.4f, val ndcg@%d %s, %.1f s (%s)", model.name, epoch,
                     loss_sum / max(stats.steps, 1), cfg.val_k, "-" if metric is None else f"{metric:.4f}",
                     stats.seconds, state.status)
        if on_epoch_end:
            on_epoch_end(model, best_state, optimizer, state, telemetry)
    if state.status == "running":
        state.status = "completed"
    return FitResult(state, telemetry, best_state)
