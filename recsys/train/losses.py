"""Losses over a model's :class:`~recsys.models.base.Output`: one value per training target.

Logits are dot products ``queries @ items.T``. The loop sums the per-target values
and divides by the global batch's target count.

- ``softmax``: full cross-entropy over every item, the seed's ``-log softmax(s)_target``.
- ``sampled_softmax``: cross-entropy over the target and ``negatives`` items shared by
  the batch, drawn uniformly or by training popularity; every logit is corrected by
  ``-log Q(item)`` (logQ correction) so the estimate targets the full softmax;
  a negative equal to the target is removed (accidental hit).
- ``bpr``: ``-log sigmoid(s_target - s_negative)`` with one drawn negative per target.

A model's own per-target penalty (``Output.regularizer``, e.g. lightgcn's L2 on the
batch's layer-0 rows) is added to the loss of each target.

>>> import torch
>>> from recsys.models.base import Output
>>> out = Output(torch.tensor([[1.0, 0.0]]), torch.tensor([0]), torch.eye(2))
>>> round(float(softmax_loss(out)[0]), 6) == round(float(torch.log1p(torch.exp(torch.tensor(-1.0)))), 6)
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recsys.errors import ConfigError
from recsys.models.base import Output


def _rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` with a deterministic backward on CPU (plain indexing accumulates in thread order)."""
    return F.embedding(index, table)


def softmax_loss(out: Output) -> torch.Tensor:
    """Full softmax cross-entropy per target: ``(M, D) @ (D, N) -> (M, N)`` logits."""
    logits = out.queries @ out.items.T                                    # (M, D) @ (D, N) -> (M, N)
    return F.cross_entropy(logits, out.targets, reduction="none")


def sampled_softmax_loss(out: Output, negatives: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over [target, shared negatives] with logQ correction (``log_q``: (N,) log sampling prob).

    >>> out = Output(torch.tensor([[1.0, 0.0]]), torch.tensor([0]), torch.eye(2))
    >>> uniform = torch.log(torch.full((2,), 0.5))
    >>> torch.allclose(sampled_softmax_loss(out, torch.tensor([1]), uniform), softmax_loss(out))
    True
    """
    positive = (out.queries * _rows(out.items, out.targets)).sum(dim=1) - log_q[out.targets]   # (M,)
    negative = out.queries @ _rows(out.items, negatives).T - log_q[negatives]                 # (M, S)
    negative = negative.masked_fill(negatives[None, :] == out.targets[:, None], float("-inf"))
    logits = torch.cat([positive[:, None], negative], dim=1)                               # (M, 1 + S)
    return -torch.log_softmax(logits, dim=1)[:, 0]


def bpr_loss(out: Output, negatives: torch.Tensor) -> torch.Tensor:
    """``-log sigmoid(s_pos - s_neg)`` per target; ``negatives`` is (M,), one per target.

    >>> out = Output(torch.tensor([[1.0, 0.0]]), torch.tensor([0]), torch.eye(2))
    >>> round(float(bpr_loss(out, torch.tensor([1]))[0]), 4)       # -log sigmoid(1 - 0)
    0.3133
    """
    positive = (out.queries * _rows(out.items, out.targets)).sum(dim=1)                    # (M,)
    negative = (out.queries * _rows(out.items, negatives)).sum(dim=1)                      # (M,)
    return -F.logsigmoid(positive - negative)


class Loss:
    """The configured loss: ``Loss(name, item_counts, negatives, sampling)(out, generator) -> (M,)``.

    >>> loss = Loss("bpr", torch.ones(3), sampling="popularity")
    >>> out = Output(torch.ones(2, 4), torch.tensor([0, 1]), torch.zeros(3, 4))
    >>> loss(out, torch.Generator().manual_seed(0)).shape
    torch.Size([2])
    """

    def __init__(self, name: str, item_counts: torch.Tensor, negatives: int = 256, sampling: str = "uniform"):
        if name not in ("softmax", "sampled_softmax", "bpr"):
            raise ConfigError(f"unknown loss {name!r}", setting="train.loss",
                              hint="use one of softmax, sampled_softmax, bpr")
        if sampling not in ("uniform", "popularity"):
            raise ConfigError(f"unknown sampling {sampling!r}", setting="train.negative_sampling",
                              hint="use uniform or popularity")
        self.name, self.negatives = name, int(negatives)
        counts = item_counts.float().cpu()
        if sampling == "popularity":
            if float(counts.sum()) <= 0:
                raise ConfigError("popularity sampling needs training interactions",
                                  setting="train.negative_sampling", hint="use uniform")
            self.probs = counts / counts.sum()
        else:
            self.probs = torch.full_like(counts, 1.0 / len(counts))
        self.log_q = torch.log(self.probs.clamp(min=1e-30))

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` item indices drawn with replacement from the sampling distribution."""
        if n == 0:
            return torch.zeros(0, dtype=torch.long)
        return torch.multinomial(self.probs, n, replacement=True, generator=generator)

    def __call__(self, out: Output, generator: torch.Generator) -> torch.Tensor:
        losses = self._data_loss(out, generator)                          # (M,)
        return losses if out.regularizer is None else losses + out.regularizer

    def _data_loss(self, out: Output, generator: torch.Generator) -> torch.Tensor:
        device = out.queries.device
        if self.name == "softmax":
            return softmax_loss(out)
        if self.name == "sampled_softmax":
            negatives = self.sample(self.negatives, generator).to(device)
            return sampled_softmax_loss(out, negatives, self.log_q.to(device))
        negatives = self.sample(len(out.targets), generator).to(device)
        return bpr_loss(out, negatives)
