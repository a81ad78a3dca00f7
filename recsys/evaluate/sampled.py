"""Sampled-candidate protocols (``uni100``, ``pop100``): each held-out item ranked against 100 sampled negatives.

Full ranking (:mod:`recsys.evaluate.topk`) is the default and the protocol to
trust; sampled protocols are offered to measure how much a conclusion depends on
the protocol (sampled metrics can reorder models, Krichene & Rendle 2020). The
report labels every row with its protocol.

Definitions:

- **Negatives**: for each (user, held-out item) pair, ``100`` items drawn without
  replacement from the items the user has not seen (train, plus val when testing)
  and that are not among the user's held-out items. ``uni100`` draws uniformly;
  ``pop100`` with probability proportional to training popularity (successive
  draws without replacement), so items nobody trained on are never drawn. A user with fewer eligible items
  gets all of them (no padding with seen items); ``n_candidates`` below is then
  smaller than 100.
- **Randomness**: every (seed, user, held-out item) pair has its own stream of
  hashed uniform numbers, so draws are reproducible and do not depend on batch
  sizes, shards or the order users come in. Drawing is rejection sampling along
  that stream (cost in proportion to the 100 negatives, not to the catalogue),
  or, for users who have seen much of the catalogue, an exact sort of hashed keys
  (see :func:`sample_negatives`).
- **Rank** of a held-out item: ``1 +`` negatives scored strictly higher ``+`` negatives
  with an equal score and a lower item index (the tie rule of full ranking).
- **Per pair**, with one relevant item among ``N + 1`` candidates and ``hit = rank <= k``:
  ``hit_rate@k = recall@k = hit``, ``precision@k = hit / k``, ``ndcg@k = hit / log2(rank + 1)``,
  ``mrr@k = map@k = hit / rank``, ``f1@k = 2 hit / (k + 1)``,
  ``auc = (N - above - tied / 2) / N``.
- **Per user**: the mean over the user's held-out items (those not masked).
  Users whose held-out items were all seen are excluded, as in full ranking.
  No top-k lists exist (each held-out item has its own candidates): list columns
  are padding, and list metrics (coverage, novelty, popularity@k, diversity) are
  not computed; ``test_popularity`` is.

>>> import torch
>>> from recsys.evaluate.topk import factor_scorer
>>> relevant = UserItems.from_pairs([0], [1], n_users=1, n_items=4)
>>> seen = UserItems.from_pairs([0], [3], n_users=1, n_items=4)
>>> score = factor_scorer(torch.ones(1, 1), torch.tensor([[3.0], [2.0], [1.0], [9.0]]))
>>> rows = evaluate_sampled(score, [0], relevant, [1, 2], seen=seen, popularity=np.ones(4), protocol="uni100")
>>> rows.values["hit_rate@1"].tolist(), rows.values["ndcg@2"].round(4).tolist(), rows.values["auc"].tolist()
([0.0], [0.6309], [0.5])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from recsys.errors import ConfigError, DataError
from recsys.evaluate.beyond import held_out_popularity
from recsys.evaluate.metrics import ACCURACY_METRICS
from recsys.evaluate.rows import MetricRows, _check_users, check_ks, column_name
from recsys.evaluate.topk import DEFAULT_MEMORY_BUDGET_BYTES, Scorer, _as_scores, batch_size_for
from recsys.evaluate.useritems import UserItems

SAMPLED_PROTOCOLS = {"uni100": ("uniform", 100), "pop100": ("popularity", 100)}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
DRAW_WIDTH_PER_NEGATIVE = 2   # rejection sampling: draws per round per negative wanted
DENSE_KEYS = 1 << 21          # exact draws: (pair, item) keys held at once (16 MiB of float64)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijective scramble of 64-bit integers (arrays wrap silently)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _pair_streams(seed: int, users: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """One 64-bit stream key per (seed, user, held-out item) pair, shape ``(P,)``."""
    base = _mix(np.full(len(users), seed, dtype=np.uint64) * _GOLDEN + np.uint64(1)
                + np.asarray(users, dtype=np.uint64) * np.uint64(0xD1B54A32D192ED03))
    return _mix(base + np.asarray(positives, dtype=np.uint64) * np.uint64(0xABC98388FB8FAC03))


def _uniforms(streams: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """``(P, len(draws))`` uniform numbers in (0, 1): draw ``j`` of each pair's stream."""
    bits = _mix(streams[:, None] + (np.asarray(draws, dtype=np.uint64)[None, :] + np.uint64(1)) * _GOLDEN)
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53


def pair_uniforms(seed: int, users: np.ndarray, positives: np.ndarray, n_items: int) -> np.ndarray:
    """``(P, n_items)`` uniform numbers in (0, 1), one per (seed, user, held-out item, candidate item).

    >>> u = pair_uniforms(0, np.array([0, 0]), np.array([1, 2]), 3)
    >>> u.shape, bool(((u > 0) & (u < 1)).all()), bool((u[0] != u[1]).any())
    ((2, 3), True, True)
    """
    return _uniforms(_pair_streams(seed, users, positives), np.arange(n_items))


def _first_distinct(draws: np.ndarray, width: int) -> np.ndarray:
    """Per row, the first ``width`` distinct non-negative values in order of appearance; ``-1`` pads."""
    order = np.argsort(draws, axis=1, kind="stable")
    ordered = np.take_along_axis(draws, order, axis=1)
    repeat = np.zeros(draws.shape, dtype=bool)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    keep = np.empty(draws.shape, dtype=bool)
    np.put_along_axis(keep, order, ~repeat, axis=1)
    keep &= draws >= 0
    rank = np.cumsum(keep, axis=1) - 1                                   # position among kept values
    out = np.full((len(draws), width), -1, dtype=np.int64)
    rows, cols = np.nonzero(keep & (rank < width))
    out[rows, rank[rows, cols]] = draws[rows, cols]
    return out


def _dense_negatives(streams, users, excluded: UserItems, n_negatives: int, weights) -> np.ndarray:
    """Exact draws by sorting one key per (pair, item): Efraimidis–Spirakis ``log(U) / w``, excluded items ``-inf``."""
    n_items = excluded.n_items
    uniforms = _uniforms(streams, np.arange(n_items))                                       # (P, I)
    with np.errstate(divide="ignore"):
        keys = np.where(weights > 0, np.log(uniforms) / np.where(weights > 0, weights, 1.0), -np.inf)
    rows, items = excluded.take(users)
    keys[rows, items] = -np.inf
    width = min(n_negatives, n_items)
    chosen = np.argpartition(-keys, width - 1, axis=1)[:, :width]
    valid = np.isfinite(np.take_along_axis(keys, chosen, axis=1))
    return np.pad(np.where(valid, chosen, -1), ((0, 0), (0, n_negatives - width)), constant_values=-1)


def sample_negatives(users, positives, excluded: UserItems, n_negatives: int, *, protocol: str,
                     popularity=None, seed: int = 0, max_rounds: int = 32) -> np.ndarray:
    """``(P, n_negatives)`` negative items for each (user, held-out item) pair; ``-1`` where too few are eligible.

    ``excluded``: items no pair of that user may draw (seen and held-out items).
    Draws follow each pair's hashed stream: item ``j`` of the stream is drawn
    uniformly (``uni100``) or by popularity (``pop100``, inverse CDF); excluded and
    repeated items are rejected until ``n_negatives`` are accepted, which is
    sampling without replacement. Pairs with less than half the catalogue's weight
    eligible, or fewer than twice ``n_negatives`` eligible items, are drawn exactly
    by sorting one Efraimidis–Spirakis key per item instead (same distribution,
    bounded time). Each row is sorted ascending (the set is what matters).

    >>> excluded = UserItems.from_pairs([0, 0], [0, 1], n_users=1, n_items=4)
    >>> sample_negatives([0], [1], excluded, 3, protocol="uni100").tolist()
    [[2, 3, -1]]
    """
    kind = _protocol(protocol)[0]
    users = np.asarray(users, dtype=np.int64)
    positives = np.asarray(positives, dtype=np.int64)
    n_items = excluded.n_items
    if kind == "uniform":
        weights = np.ones(n_items)
    else:
        weights = np.asarray(popularity, dtype=np.float64)
        if weights.shape != (n_items,) or np.any(weights < 0) or not np.all(np.isfinite(weights)):
            raise DataError(f"popularity must be {n_items} finite non-negative counts, got shape {weights.shape}",
                            hint="pass CatalogueStats.popularity of the same catalogue")
    streams = _pair_streams(seed, users, positives)
    out = np.full((len(users), n_negatives), -1, dtype=np.int64)
    rows, items = excluded.take(users)
    total = weights.sum()
    eligible_mass = total - np.bincount(rows, weights=weights[items], minlength=len(users))
    eligible_count = np.count_nonzero(weights > 0) - np.bincount(rows, weights=weights[items] > 0,
                                                                 minlength=len(users))
    dense = (eligible_count < 2 * n_negatives) | (eligible_mass < 0.5 * total)
    todo = np.flatnonzero(~dense)
    cdf = np.cumsum(weights)
    width = DRAW_WIDTH_PER_NEGATIVE * n_negatives + 16            # draws per pair per round
    for round_ in range(max_rounds):
        if not len(todo):
            break
        u = _uniforms(streams[todo], np.arange(round_ * width, (round_ + 1) * width))
        draws = np.minimum(np.searchsorted(cdf, u * total, side="right"), n_items - 1)      # (T, width)
        draws = np.where(excluded.contains(users[todo], draws), -1, draws)
        accepted = _first_distinct(np.concatenate([out[todo], draws], axis=1), n_negatives)
        out[todo] = accepted
        todo = todo[(accepted < 0).any(axis=1)]
    dense[todo] = True                                            # never finished by rejection: draw exactly
    dense = np.flatnonzero(dense)
    step = max(1, DENSE_KEYS // max(n_items, 1))                  # pairs whose (pair, item) keys fit at once
    for lo in range(0, len(dense), step):
        part = dense[lo:lo + step]
        out[part] = _dense_negatives(streams[part], users[part], excluded, n_negatives, weights)
    valid = out >= 0
    out = np.where(valid, out, n_items)
    out.sort(axis=1)
    out[out == n_items] = -1
    return out


def _protocol(protocol: str) -> tuple[str, int]:
    if protocol not in SAMPLED_PROTOCOLS:
        raise ConfigError(f"unknown sampled protocol {protocol!r}", setting="eval.protocol",
                          hint=f"use full or one of {', '.join(SAMPLED_PROTOCOLS)}")
    return SAMPLED_PROTOCOLS[protocol]


def sampled_columns(ks: Sequence[int]) -> list[str]:
    """Value columns of :func:`evaluate_sampled`.

    >>> sampled_columns([5])[-2:]
    ['auc', 'test_popularity']
    """
    return [column_name(m, k) for k in ks for m in ACCURACY_METRICS] + ["auc", "test_popularity"]


def pair_metrics(rank: np.ndarray, n_above: np.ndarray, n_tied: np.ndarray, n_candidates: np.ndarray,
                 ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-pair values of one held-out item at ``rank`` among ``n_candidates`` negatives (see the module doc).

    >>> {n: v.round(4).tolist() for n, v in pair_metrics(np.array([2]), np.array([1]), np.array([0]),
    ...                                                   np.array([4]), [2]).items() if n in ("ndcg@2", "auc")}
    {'ndcg@2': [0.6309], 'auc': [0.75]}
    """
    rank = rank.astype(np.float64)
    out = {}
    for k in ks:
        hit = (rank <= k).astype(np.float64)
        out[f"precision@{k}"] = hit / k
        out[f"recall@{k}"] = hit
        out[f"f1@{k}"] = hit * 2.0 / (k + 1)
        out[f"ndcg@{k}"] = hit / np.log2(rank + 1)
        out[f"map@{k}"] = hit / rank
        out[f"mrr@{k}"] = hit / rank
        out[f"hit_rate@{k}"] = hit
    n = n_candidates.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["auc"] = np.where(n > 0, (n - n_above - 0.5 * n_tied) / np.maximum(n, 1), np.nan)
    return out


def _finite_scores(scores: torch.Tensor, users: np.ndarray) -> np.ndarray:
    values = scores.detach().cpu().numpy()
    bad = np.flatnonzero((np.isnan(values) | (values == np.inf)).any(axis=1))
    if len(bad):
        raise DataError(f"the model scored NaN or +inf for {len(bad)} users, e.g. user_idx {users[bad[:5]].tolist()}",
                        hint="check the model for diverged weights (see the training curves)")
    return np.maximum(values, np.finfo(values.dtype).min)       # -inf from a model: lowest finite score


def evaluate_sampled(score: Scorer, users, relevant: UserItems, ks: Sequence[int], *, seen: UserItems | None,
                     popularity, protocol: str, seed: int = 0,
                     memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES) -> MetricRows:
    """Metric rows under a sampled protocol; same users, masking and exclusion rules as full ranking.

    Users are scored in the batches full ranking uses (``batch_size_for``), so a
    sharded run cut with :func:`~recsys.evaluate.rows.shard_users` gives identical rows.
    """
    kind, n_negatives = _protocol(protocol)
    ks = check_ks(ks)
    users = _check_users(users, relevant.n_users)
    n_items = relevant.n_items
    popularity = np.asarray(popularity, dtype=np.float64)
    relevant = relevant.restrict(users)
    held_out = relevant.difference(seen) if seen is not None else relevant
    excluded = held_out.union(seen.restrict(users)) if seen is not None else held_out
    n_relevant = held_out.counts()[users]
    n_masked = relevant.counts()[users] - n_relevant
    names = sampled_columns(ks)
    values = {name: np.full(len(users), np.nan) for name in names}
    included = users[n_relevant > 0]
    position = np.searchsorted(users, included)
    batch = batch_size_for(n_items, memory_budget_bytes)
    draw_bytes = ((DRAW_WIDTH_PER_NEGATIVE + 1) * n_negatives + 16) * 8 * 8     # int64 draws, ~8 temporaries
    pairs_per_chunk = max(1, memory_budget_bytes // draw_bytes)
    with torch.no_grad():
        for start in range(0, len(included), batch):
            batch_users = included[start:start + batch]
            scores = _finite_scores(_as_scores(score(torch.from_numpy(batch_users)), batch_users, n_items),
                                    batch_users)                                                  # (B, I)
            rows, positives = held_out.take(batch_users)
            sums = {name: np.zeros(len(batch_users)) for name in names if name != "test_popularity"}
            for lo in range(0, len(rows), pairs_per_chunk):
                r, p = rows[lo:lo + pairs_per_chunk], positives[lo:lo + pairs_per_chunk]
                negatives = sample_negatives(batch_users[r], p, excluded, n_negatives, protocol=protocol,
                                             popularity=popularity, seed=seed)                  # (c, n)
                valid = negatives >= 0
                own = scores[r, p][:, None]                                                       # (c, 1)
                other = scores[r[:, None], np.where(valid, negatives, 0)]                         # (c, n)
                above = ((other > own) & valid).sum(axis=1)
                equal = (other == own) & valid
                tied = equal.sum(axis=1)
                rank = 1 + above + (equal & (negatives < p[:, None])).sum(axis=1)
                for name, value in pair_metrics(rank, above, tied, valid.sum(axis=1), ks).items():
                    sums[name] += np.bincount(r, weights=np.nan_to_num(value, nan=0.0), minlength=len(batch_users))
                    if name == "auc":        # a pair without negatives has no AUC: leave it out of the mean
                        sums.setdefault("_auc_pairs", np.zeros(len(batch_users)))
                        sums["_auc_pairs"] += np.bincount(r, weights=~np.isnan(value), minlength=len(batch_users))
            counts = np.bincount(rows, minlength=len(batch_users)).astype(np.float64)
            where = position[start:start + batch]
            auc_pairs = sums.pop("_auc_pairs", np.zeros(len(batch_users)))
            for name, total in sums.items():
                denominator = auc_pairs if name == "auc" else counts
                with np.errstate(invalid="ignore", divide="ignore"):
                    values[name][where] = np.where(denominator > 0, total / np.maximum(denominator, 1), np.nan)
            values["test_popularity"][where] = held_out_popularity(held_out, batch_users, popularity)
    top_k = max(ks)
    return MetricRows(users, n_relevant, n_masked, values, np.full((len(users), top_k), -1, dtype=np.int32),
                      np.full((len(users), top_k), -np.inf, dtype=np.float32), n_items)
