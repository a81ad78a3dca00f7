"""Health statistics of an embedding matrix: the columns of the report's ``embedding_health`` table.

- ``effective_rank``: exp of the entropy of the normalised singular values
  (Roy & Vetterli 2007): 1 for rank-one data, ``dim`` for a spectrum that is flat.
- ``isotropy``: min over max of the partition function ``Z(c) = Σ_i exp(c·v_i)``
  over the principal directions ``c`` of ``VᵀV``, both signs (Mu & Viswanath
  2018); 1 when no direction is preferred, near 0 when vectors share one.
- ``mean_cosine``: mean cosine over all pairs of distinct non-zero rows, exact in
  O(n·d) from the sum of unit vectors.
- ``dead_rows``: rows with norm below ``dead_threshold``; ``details.duplicate_vectors``:
  rows equal to an earlier row.

Rank and isotropy use a seeded sample of at most ``sample`` rows; the rest use every row.

>>> row = embedding_health(np.eye(2, dtype=np.float32))
>>> row["effective_rank"], row["mean_cosine"], row["details"]["duplicate_vectors"]
(2.0, 0.0, 0)
"""

from __future__ import annotations

import numpy as np


def effective_rank(vectors: np.ndarray) -> float:
    """exp(entropy of singular values / their sum); 0 for an all-zero matrix.

    >>> round(effective_rank(np.array([[1.0, 0.0], [2.0, 0.0]])), 6)
    1.0
    """
    if vectors.size == 0:
        return 0.0
    return rank_from_spectrum(np.linalg.svd(vectors.astype(np.float64), compute_uv=False))


def rank_from_spectrum(singular: np.ndarray) -> float:
    """Effective rank from singular values already computed (one SVD serves rank and spectrum head).

    >>> rank_from_spectrum(np.array([1.0, 1.0, 0.0]))
    2.0
    """
    total = singular.sum()
    if total <= 0:
        return 0.0
    p = singular[singular > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def isotropy(vectors: np.ndarray) -> float | None:
    """min_c Z(c) / max_c Z(c) over the eigenvectors c of VᵀV and their negatives; None for no rows.

    >>> round(isotropy(np.array([[1.0, 0.0], [1.0, 0.0]])), 6) == round(float(np.exp(-2.0)), 6)
    True
    """
    if len(vectors) == 0:
        return None
    v = vectors.astype(np.float64)
    _, directions = np.linalg.eigh(v.T @ v)                     # columns: principal directions (D, D)
    scores = v @ np.concatenate([directions, -directions], axis=1)  # (N, 2D)
    top = scores.max(axis=0)
    log_z = top + np.log(np.exp(scores - top).sum(axis=0))      # log-sum-exp per direction
    return float(np.exp(log_z.min() - log_z.max()))


def mean_cosine(vectors: np.ndarray) -> float | None:
    """Mean cosine similarity over pairs of distinct non-zero rows (None with fewer than two).

    >>> mean_cosine(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]))
    0.3333333333333333
    """
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors[norms > 0] / norms[norms > 0, None]
    n = len(unit)
    if n < 2:
        return None
    total = unit.astype(np.float64).sum(axis=0)
    return float((total @ total - n) / (n * (n - 1)))


def duplicate_rows(vectors: np.ndarray) -> int:
    """Rows identical to an earlier row.

    >>> duplicate_rows(np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0]]))
    1
    """
    if len(vectors) == 0:
        return 0
    rows = np.ascontiguousarray(vectors).view(np.dtype((np.void, vectors.dtype.itemsize * vectors.shape[1])))
    return int(len(vectors) - len(np.unique(rows)))


def embedding_health(
    vectors: np.ndarray, *, sample: int = 10_000, dead_threshold: float = 1e-6, seed: int = 0,
) -> dict:
    """The ``embedding_health`` statistics of an (n, d) matrix (``details`` a dict, written as JSON).

    >>> row = embedding_health(np.array([[3.0, 4.0], [0.0, 0.0]]))
    >>> row["norm_mean"], row["norm_std"], row["dead_rows"]
    (2.5, 2.5, 1)
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    if n > sample:
        picked = np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))
        sampled = vectors[picked]
    else:
        sampled = vectors
    spectrum = np.linalg.svd(sampled.astype(np.float64), compute_uv=False) if n else np.zeros(0)
    share = spectrum / spectrum.sum() if spectrum.sum() > 0 else spectrum
    return {
        "n_rows": int(n),
        "dim": int(dim),
        "effective_rank": rank_from_spectrum(spectrum) if n else None,
        "norm_mean": float(norms.mean()) if n else None,
        "norm_std": float(norms.std()) if n else None,
        "norm_min": float(norms.min()) if n else None,
        "norm_max": float(norms.max()) if n else None,
        "isotropy": isotropy(sampled),
        "mean_cosine": mean_cosine(vectors),
        "dead_rows": int((norms < dead_threshold).sum()),
        "details": {
            "duplicate_vectors": duplicate_rows(vectors),
            "sample_size": int(len(sampled)),
            "dead_threshold": dead_threshold,
            "spectrum_head": [round(float(x), 6) for x in share[:10]],
        },
    }
