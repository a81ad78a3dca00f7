"""How far fine-tuning moved a set of vectors: cosine drift, linear CKA, anisotropy (pure torch).

- ``mean_cosine(a, b)``: the mean cosine between row ``i`` of ``a`` and row ``i`` of ``b``
  (1 = every vector points where it pointed before).
- ``linear_cka(x, y)``: linear centred kernel alignment (Kornblith et al., 2019) between two
  representations of the same ``n`` examples, ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``
  with ``Xc``, ``Yc`` column-centred; 1 for identical representations, invariant to
  orthogonal transforms and isotropic scaling of either side, not to arbitrary linear maps.
- ``anisotropy(x)``: the mean cosine between two different rows (0 for directions spread
  evenly, 1 when every vector points the same way: a collapsed text space).

>>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
>>> round(linear_cka(x, x), 6), round(mean_cosine(x, 2 * x), 6)
(1.0, 1.0)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean row-wise cosine of two (n, d) tensors; rows of zeros count as cosine 0.

    >>> mean_cosine(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    0.5
    """
    return float(F.cosine_similarity(a.double(), b.double(), dim=1, eps=1e-12).mean())


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of (n, p) and (n, q) representations of the same n examples, in [0, 1].

    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    >>> round(linear_cka(x, torch.tensor([[1.0], [0.0], [0.0]])), 6)    # hand-computed: 5 / (2 sqrt(10))
    0.790569
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"linear_cka needs the same examples on both sides, got {x.shape[0]} and {y.shape[0]} rows")
    xc = x.double() - x.double().mean(dim=0, keepdim=True)                # (n, p)
    yc = y.double() - y.double().mean(dim=0, keepdim=True)                # (n, q)
    cross = torch.linalg.matrix_norm(yc.T @ xc) ** 2                      # (q, n) @ (n, p) -> (q, p)
    norm = torch.linalg.matrix_norm(xc.T @ xc) * torch.linalg.matrix_norm(yc.T @ yc)
    return float(cross / norm) if float(norm) > 0 else 0.0


def anisotropy(x: torch.Tensor) -> float:
    """Mean cosine between distinct rows of (n, d) ``x`` (n >= 2).

    >>> anisotropy(torch.tensor([[1.0, 0.0], [2.0, 0.0]])), anisotropy(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    (1.0, -1.0)
    """
    n = x.shape[0]
    if n < 2:
        return 0.0
    unit = F.normalize(x.double(), dim=1)                                 # (n, d)
    total = unit.sum(dim=0)                                               # (d,)
    pairs = float(total @ total) - float((unit * unit).sum())             # sum over i != j of cos(i, j)
    return pairs / (n * (n - 1))
