"""Training instrumentation: rows for the report's ``curves`` and ``grad_stats`` tables.

Every ``log_every`` steps: ``train/loss`` (mean over the window), ``lr`` and
``train/samples_per_s``. Every ``probe_every`` steps, per parameter tensor: the
gradient's L2 norm (before clipping), NaN and Inf counts, the weight norm, and the
update-to-weight ratio ``||w_after - w_before|| / ||w_after||`` of that step. For
embedding tables, the share of rows that received a non-zero gradient in any step
so far (``rows_touched_share``, cumulative from the start of this fit, so it only
grows and its last value is the share of rows that ever trained). A step whose loss or gradient is
not finite is recorded whatever the cadence (:meth:`Probes.record_nonfinite`).

The time spent here is measured (``seconds``) so each epoch reports the share of
its time that instrumentation took (``instrumentation/share``).

>>> import torch
>>> model = torch.nn.Embedding(4, 2)
>>> probes = Probes(model, Telemetry("toy"), log_every=1, probe_every=1)
>>> model(torch.tensor([1])).sum().backward()
>>> probes.after_backward(step=0, epoch=0)
>>> probes.before_update(step=0)
>>> probes.after_update(step=0, epoch=0)
>>> row = probes.telemetry.grad_stats[0]
>>> row["layer"], row["rows_touched_share"], row["nan_count"]
('weight', 0.25, 0)
"""

from __future__ import annotations

import resource
import sys
import time

import torch
import torch.nn as nn


class Telemetry:
    """The rows one model's training produced, as plain dicts (they travel inside checkpoints)."""

    def __init__(self, model: str, curves: list[dict] | None = None, grad_stats: list[dict] | None = None):
        self.model = model
        self.curves: list[dict] = list(curves or [])
        self.grad_stats: list[dict] = list(grad_stats or [])

    def curve(self, step: int, epoch: int, name: str, value: float) -> None:
        self.curves.append({"model": self.model, "step": int(step), "epoch": int(epoch), "name": name,
                            "value": float(value)})

    def state(self) -> dict:
        return {"model": self.model, "curves": self.curves, "grad_stats": self.grad_stats}

    @classmethod
    def from_state(cls, state: dict) -> "Telemetry":
        return cls(state["model"], state["curves"], state["grad_stats"])


def peak_memory_mb(device: torch.device | None = None) -> float:
    """Peak memory of this process: CUDA allocations on a GPU, else the peak resident set size."""
    if device is not None and device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def embedding_weights(model: nn.Module) -> set[str]:
    """Names of the parameters that are embedding tables (one row per id).

    >>> sorted(embedding_weights(nn.Sequential(nn.Embedding(3, 2), nn.Linear(2, 2))))
    ['0.weight']
    """
    return {f"{name}.weight" if name else "weight" for name, module in model.named_modules()
            if isinstance(module, nn.Embedding)}


class Probes:
    """Collects curves and per-layer statistics of one model's training into a :class:`Telemetry`."""

    def __init__(self, model: nn.Module, telemetry: Telemetry, *, log_every: int = 10, probe_every: int = 50,
                 enabled: bool = True) -> None:
        self.telemetry = telemetry
        self.log_every, self.probe_every, self.enabled = log_every, probe_every, enabled
        self.params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.by_name = dict(self.params)
        embeddings = embedding_weights(model)
        self.touched = {name: torch.zeros(p.shape[0], dtype=torch.bool, device=p.device)
                        for name, p in self.params if name in embeddings}
        self.pending: dict[str, dict] = {}
        self.before: dict[str, torch.Tensor] = {}
        self.seconds = 0.0
        self._window_loss = None
        self._window_steps = 0
        self._window_samples = 0
        self._window_start = time.perf_counter()

    def is_probe_step(self, step: int) -> bool:
        return self.enabled and step % self.probe_every == 0

    def after_backward(self, step: int, epoch: int) -> None:
        """After ``backward()``, before clipping: mark touched rows; on probe steps, gradient statistics
        and the cumulative share of touched rows."""
        if not self.enabled:
            return
        started = time.perf_counter()
        with torch.no_grad():
            for name, rows in self.touched.items():
                grad = self.by_name[name].grad
                if grad is not None:
                    rows |= grad.ne(0).any(dim=1)
            if self.is_probe_step(step):
                self.pending = {name: self._grad_row(name, p, step, epoch) for name, p in self.params}
                for name, rows in self.touched.items():
                    self.pending[name]["rows_touched_share"] = float(rows.float().mean())
        self.seconds += time.perf_counter() - started

    def _grad_row(self, name: str, p: torch.Tensor, step: int, epoch: int) -> dict:
        row = {"model": self.telemetry.model, "step": int(step), "epoch": int(epoch), "layer": name,
               "grad_norm": None, "nan_count": 0, "inf_count": 0}
        if p.grad is not None:
            grad = p.grad.detach()
            row["nan_count"] = int(torch.isnan(grad).sum())
            row["inf_count"] = int(torch.isinf(grad).sum())
            row["grad_norm"] = float(torch.linalg.vector_norm(grad.float()))
        return row

    def before_update(self, step: int) -> None:
        """Before ``optimizer.step()`` on probe steps: keep the weights to measure the update."""
        if self.is_probe_step(step):
            started = time.perf_counter()
            self.before = {name: p.detach().clone() for name, p in self.params}
            self.seconds += time.perf_counter() - started

    def after_update(self, step: int, epoch: int) -> None:
        """After ``optimizer.step()`` on probe steps: weight norms and update ratios; rows are final."""
        if not self.is_probe_step(step):
            return
        started = time.perf_counter()
        with torch.no_grad():
            for name, p in self.params:
                weight_norm = float(torch.linalg.vector_norm(p.detach().float()))
                update = float(torch.linalg.vector_norm((p.detach() - self.before[name]).float()))
                row = self.pending.get(name) or self._grad_row(name, p, step, epoch)
                row["weight_norm"] = weight_norm
                row["update_ratio"] = update / weight_norm if weight_norm > 0 else None
                self.telemetry.grad_stats.append(row)
        self.pending, self.before = {}, {}
        self.seconds += time.perf_counter() - started

    def step_done(self, step: int, epoch: int, loss: torch.Tensor, n_samples: int, lr: float) -> None:
        """Accumulate the step's loss; every ``log_every`` steps write loss, lr and throughput points."""
        if not self.enabled:
            return
        started = time.perf_counter()
        value = loss.detach()
        self._window_loss = value if self._window_loss is None else self._window_loss + value
        self._window_steps += 1
        self._window_samples += n_samples
        if (step + 1) % self.log_every == 0:
            now = time.perf_counter()
            self.telemetry.curve(step, epoch, "train/loss", float(self._window_loss) / self._window_steps)
            self.telemetry.curve(step, epoch, "lr", lr)
            self.telemetry.curve(step, epoch, "train/samples_per_s",
                                 self._window_samples / max(now - self._window_start, 1e-9))
            self._window_loss, self._window_steps, self._window_samples = None, 0, 0
            self._window_start = now
        self.seconds += time.perf_counter() - started

    def record_nonfinite(self, step: int, epoch: int, where: str, loss: float) -> None:
        """A step with a non-finite loss or gradient: every layer's gradient statistics, whatever the cadence."""
        for name, p in self.params:
            row = self._grad_row(name, p, step, epoch)
            row["weight_norm"] = float(torch.linalg.vector_norm(p.detach().float()))
            self.telemetry.grad_stats.append(row)
        self.telemetry.curve(step, epoch, "train/nonfinite", 1.0)
        if not (loss == loss) or abs(loss) == float("inf"):
            self.telemetry.curve(step, epoch, "train/loss", loss)


def first_nonfinite(model: nn.Module, loss: torch.Tensor) -> str:
    """Where a step went non-finite: ``"loss"`` or ``"grad:<first parameter with NaN/Inf gradient>"``.

    >>> layer = nn.Linear(1, 1)
    >>> first_nonfinite(layer, torch.tensor(float("nan")))
    'loss'
    """
    if not bool(torch.isfinite(loss)):
        return "loss"
    for name, p in model.named_parameters():
        if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
            return f"grad:{name}"
    return "grad"
