"""Full-ranking top-k scoring over every item, in user batches sized from a memory budget.

For each batch of users the scorer returns a dense ``(B, n_items)`` score block;
items the user has already seen are set to ``-inf``; ``torch.topk`` picks the
best ``k``. Only one block lives at a time, so memory does not grow with the
number of users: ``B = memory_budget_bytes // (n_items * 4)``. Rank counts
(``with_ranks``) reuse one more block's worth of buffers; the scorer may need
working memory of its own. On CPU (glibc), blocks up to 32 MiB are reused by the
allocator while larger ones are mapped afresh, with page faults, for every batch,
so a modest budget is usually also the fastest (see benchmarks/RESULTS.md).

Definition choices, fixed here for every metric downstream:

- **Masking**: a seen item never appears in a top-k list. Users with fewer than
  ``k`` unseen items get padded lists: item ``-1``, score ``-inf``.
- **Ties**: equal scores are ordered by item index, lowest first, so results are
  deterministic and do not depend on the batch a user falls in.
- **Scorer**: ``score(user_idx)`` gets a CPU ``int64`` tensor of user indices and
  returns ``(len(user_idx), n_items)`` floating-point scores on any device. Seen
  items are masked in place in that tensor, so it must be the scorer's own fresh
  result (a view of stored scores is detected and copied first).
- **Scores**: must not be NaN or ``+inf`` (a :class:`DataError` names the users).
  ``-inf`` from a model is read as the lowest finite score, so such items stay
  candidates and rank below every other candidate.
- **Ranks** (``with_ranks``): for each held-out item of a user, the number of
  unseen items scored strictly higher (``n_above``) and equally (``n_tied``,
  excluding the item itself), and its 1-based position under the tie rule
  (``rank``). Held-out items that are also seen get ``-1`` in all three. This is
  what AUC over the full ranking needs, without keeping users × items.

>>> import torch
>>> users, items = torch.eye(2), torch.tensor([[1., 0.], [0., 1.], [1., 1.]])
>>> seen = UserItems.from_pairs([0], [2], n_users=2, n_items=3)
>>> result = topk(factor_scorer(users, items), [0, 1], k=2, seen=seen)
>>> result.items.tolist()
[[0, 1], [1, 2]]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recsys.errors import ConfigError, DataError
from recsys.evaluate.useritems import UserItems

Scorer = Callable[[torch.Tensor], torch.Tensor]
DEFAULT_MEMORY_BUDGET_BYTES = 16 * 2**20       # see the module doc: small blocks are reused on CPU


@dataclass
class Ranks:
    """Positions of held-out items in the full ranking, one entry per (user, held-out item) pair."""

    row: np.ndarray        # (P,) row of the user in the batch / result
    item: np.ndarray       # (P,) held-out item
    score: np.ndarray      # (P,) its score (-inf when masked)
    n_above: np.ndarray    # (P,) unseen items scored strictly higher
    n_tied: np.ndarray     # (P,) other unseen items with the same score
    rank: np.ndarray       # (P,) 1-based position with ties broken by item index


@dataclass
class TopK:
    """Top-k lists of a batch of users (or of all users, see :func:`topk`)."""

    users: np.ndarray          # (B,) user indices
    items: np.ndarray          # (B, k) item indices, best first; -1 pads short lists
    scores: np.ndarray         # (B, k) float32 scores; -inf pads
    n_candidates: np.ndarray   # (B,) unseen items each user was ranked over
    ranks: Ranks | None = None


def factor_scorer(user_factors: torch.Tensor, item_factors: torch.Tensor) -> Scorer:
    """Scorer for precomputed vectors: ``score(u) = user_factors[u] @ item_factors.T``.

    >>> score = factor_scorer(torch.ones(3, 2), torch.tensor([[1., 2.], [0., 1.]]))
    >>> score(torch.tensor([0, 2])).tolist()
    [[3.0, 1.0], [3.0, 1.0]]
    """
    if user_factors.ndim != 2 or item_factors.ndim != 2 or user_factors.shape[1] != item_factors.shape[1]:
        raise DataError(
            f"user and item factors must be matrices with the same width, got shapes "
            f"{tuple(user_factors.shape)} and {tuple(item_factors.shape)}",
            hint="pass user_factors (n_users, d) and item_factors (n_items, d)")
    item_t = item_factors.T.contiguous()

    def score(users: torch.Tensor) -> torch.Tensor:
        return user_factors[users.to(user_factors.device)] @ item_t   # (B, d) @ (d, I) -> (B, I)

    return score


def batch_size_for(n_items: int, memory_budget_bytes: int) -> int:
    """Users per batch so that one float32 ``(batch, n_items)`` block fits the budget.

    >>> batch_size_for(20_000, 256 * 2**20)
    3355
    """
    row_bytes = 4 * int(n_items)
    if memory_budget_bytes < row_bytes:
        raise ConfigError(
            f"the memory budget ({memory_budget_bytes} bytes) is smaller than one user's scores "
            f"({n_items} items x 4 bytes = {row_bytes} bytes)",
            setting="eval.memory_budget_mb", hint="raise the budget")
    return int(memory_budget_bytes // row_bytes)


def _as_scores(scores: torch.Tensor, users: np.ndarray, n_items: int) -> torch.Tensor:
    if not isinstance(scores, torch.Tensor) or scores.shape != (len(users), n_items):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise DataError(f"the scorer returned {shape} for {len(users)} users, expected "
                        f"({len(users)}, {n_items})", hint="score(users) must return (len(users), n_items)")
    if not scores.is_floating_point():
        raise DataError(f"the scorer returned {scores.dtype} scores", hint="return floating-point scores")
    if scores.dtype in (torch.float16, torch.bfloat16):
        return scores.float()
    if scores._base is not None:
        return scores.clone()              # a view of stored scores: masking must not write into it
    return scores


def _mask(scores: torch.Tensor, users: np.ndarray, seen: UserItems | None) -> None:
    if seen is not None:
        rows, items = seen.take(users)
        scores[torch.from_numpy(rows).to(scores.device), torch.from_numpy(items).to(scores.device)] = -np.inf


def _top_candidates(scores: torch.Tensor, users: np.ndarray, seen: UserItems | None, width: int,
                    n_candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``topk`` of the masked block as NumPy arrays, checked without extra passes over the block.

    ``topk`` ranks NaN above everything, so a NaN or ``+inf`` anywhere in a row
    shows at its top. A ``-inf`` where a candidate should stand means the model
    scored a candidate ``-inf``: only those rows are redone with such scores
    raised to the lowest finite value, so they cannot be confused with masked items.
    """
    values_t, indices_t = torch.topk(scores, width, dim=1, largest=True, sorted=True)
    values, indices = values_t.cpu().numpy(), indices_t.cpu().numpy().astype(np.int64, copy=False)
    bad = np.flatnonzero(np.isnan(values[:, 0]) | (values[:, 0] == np.inf))
    if len(bad):
        raise DataError(f"the model scored NaN or +inf for {len(bad)} users, e.g. user_idx "
                        f"{users[bad[:5]].tolist()}",
                        hint="check the model for diverged weights (see the training curves)")
    limit = np.minimum(n_candidates, width)
    redo = np.flatnonzero((np.isneginf(values) & (np.arange(width)[None, :] < limit[:, None])).any(axis=1))
    if len(redo):
        redo_t = torch.from_numpy(redo).to(scores.device)
        block = scores[redo_t].clamp_(min=torch.finfo(scores.dtype).min)
        _mask(block, users[redo], seen)
        scores[redo_t] = block
        again_values, again_indices = torch.topk(block, width, dim=1, largest=True, sorted=True)
        values[redo], indices[redo] = again_values.cpu().numpy(), again_indices.cpu().numpy()
    return values, indices


def _top_ordered(scores: torch.Tensor, values: np.ndarray, indices: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (items, scores) per row from a ``topk`` of width ``k + 1`` (or of all items).

    Equal scores go by item index, lowest first: ties inside the top k are
    re-sorted, and a tie group cut by the k-th place keeps its lowest indices.
    Works on the small ``(B, k + 1)`` arrays; only rows with a cut tie go back to the block.
    """
    n_items = scores.shape[1]
    if k < n_items:          # a tie across the cut: the (k+1)-th value equals the k-th (and is a real score)
        fix = np.flatnonzero((values[:, k] == values[:, k - 1]) & np.isfinite(values[:, k - 1]))
        values, indices = values[:, :k], indices[:, :k].copy()
        if len(fix):         # keep the lowest indices of the group the cut runs through
            threshold = values[fix, k - 1:]
            selected_ties = (values[fix] == threshold).sum(axis=1)
            need = int(selected_ties.max())
            fix_t = torch.from_numpy(fix).to(scores.device)
            tied = scores[fix_t] == torch.from_numpy(threshold).to(scores.device, scores.dtype)
            positions = torch.arange(n_items, device=scores.device, dtype=torch.int32)
            tied_at = torch.where(tied, positions, n_items)
            lowest = torch.topk(tied_at, need, dim=1, largest=False, sorted=True).values.cpu().numpy()
            start = k - selected_ties                                    # first slot of the group
            slot = np.arange(k)[None, :]
            take = np.clip(slot - start[:, None], 0, need - 1)
            indices[fix] = np.where(slot >= start[:, None], np.take_along_axis(lowest, take, axis=1), indices[fix])
    order = np.lexsort((indices, -values), axis=1)                   # score descending, then item index
    return np.take_along_axis(indices, order, axis=1), np.take_along_axis(values, order, axis=1)


def _ranks(scores: torch.Tensor, positions: np.ndarray, items: np.ndarray, buffers: dict) -> Ranks:
    """Counts of unseen items above / tied with each held-out item (seen items are ``-inf``).

    Comparisons write 0/1 into a reused float buffer and are summed as floats: on CPU
    this is several times faster than reducing a fresh boolean tensor.
    """
    n_items, device = scores.shape[1], scores.device
    if buffers.get("dtype") != scores.dtype:
        chunk = buffers["rows"]
        flag_dtype = torch.float32 if n_items < 2**24 else torch.float64      # counts stay exact
        buffers.update(dtype=scores.dtype, gathered=torch.empty(chunk, n_items, dtype=scores.dtype, device=device),
                       flags=torch.empty(chunk, n_items, dtype=flag_dtype, device=device))
    gathered, flags = buffers["gathered"], buffers["flags"]
    pos_t = torch.from_numpy(positions).to(device)
    pair_scores_t = scores[pos_t, torch.from_numpy(items).to(device)]
    pair_scores = pair_scores_t.cpu().numpy()
    above = np.empty(len(items), dtype=np.int64)
    tied = np.empty(len(items), dtype=np.int64)
    before = np.zeros(len(items), dtype=np.int64)
    for start in range(0, len(items), len(gathered)):
        size = min(len(gathered), len(items) - start)
        part = slice(start, start + size)
        rows = torch.index_select(scores, 0, pos_t[part], out=gathered[:size])       # (c, I)
        own = pair_scores_t[part, None]                                                # (c, 1)
        above[part] = torch.gt(rows, own, out=flags[:size]).sum(dim=1).cpu().numpy()
        tied[part] = torch.eq(rows, own, out=flags[:size]).sum(dim=1).cpu().numpy() - 1
        has_ties = np.flatnonzero(tied[part] > 0)
        if len(has_ties):                     # position among equal scores: count those with a lower index
            columns = torch.arange(n_items, device=device)[None, :]
            earlier = columns < torch.from_numpy(items[part][has_ties]).to(device)[:, None]
            rows_with_ties = flags[torch.from_numpy(has_ties).to(device)].bool()
            before[start + has_ties] = (rows_with_ties & earlier).sum(dim=1).cpu().numpy()
    masked = np.isneginf(pair_scores)
    rank = np.where(masked, -1, above + before + 1)
    return Ranks(row=positions, item=items, score=pair_scores.astype(np.float32), n_above=np.where(masked, -1, above),
                 n_tied=np.where(masked, -1, tied), rank=rank)


def _score_block(score: Scorer, users: np.ndarray, k: int, n_items: int, seen: UserItems | None,
                 relevant: UserItems | None, buffers: dict | None) -> TopK:
    scores = _as_scores(score(torch.from_numpy(users)), users, n_items)          # (B, I)
    if buffers is not None:        # ranks compare every candidate: -inf from the model must not look masked
        scores.clamp_(min=torch.finfo(scores.dtype).min)
    _mask(scores, users, seen)
    n_candidates = np.full(len(users), n_items, dtype=np.int64)
    if seen is not None:
        n_candidates -= seen.indptr[users + 1] - seen.indptr[users]
    kk = min(k, n_items)
    values, indices = _top_candidates(scores, users, seen, min(kk + 1, n_items), n_candidates)
    out_items, out_scores = _top_ordered(scores, values, indices, kk)
    out_scores = out_scores.astype(np.float32)
    padding = np.arange(kk)[None, :] >= n_candidates[:, None]
    out_items[padding], out_scores[padding] = -1, -np.inf
    if kk < k:
        out_items = np.pad(out_items, ((0, 0), (0, k - kk)), constant_values=-1)
        out_scores = np.pad(out_scores, ((0, 0), (0, k - kk)), constant_values=-np.inf)
    ranks = _ranks(scores, *relevant.take(users), buffers) if buffers is not None else None
    return TopK(users, out_items, out_scores, n_candidates, ranks)


def iter_topk(
    score: Scorer,
    users: Sequence[int] | np.ndarray,
    k: int,
    *,
    n_items: int | None = None,
    seen: UserItems | None = None,
    relevant: UserItems | None = None,
    with_ranks: bool = False,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
) -> Iterator[TopK]:
    """Yield :class:`TopK` for consecutive batches of ``users`` (see the module doc for the rules).

    ``n_items`` defaults to that of ``seen`` or ``relevant``. ``with_ranks`` needs
    ``relevant`` (the held-out items) and fills :attr:`TopK.ranks`.

    >>> import torch
    >>> score = factor_scorer(torch.ones(4, 1), torch.tensor([[3.], [1.], [2.]]))
    >>> [batch.items.tolist() for batch in iter_topk(score, range(4), 1, n_items=3, memory_budget_bytes=24)]
    [[[0], [0]], [[0], [0]]]
    """
    sizes = {s.n_items for s in (seen, relevant) if s is not None}
    if n_items is not None:
        sizes.add(int(n_items))
    if len(sizes) != 1:
        raise DataError(f"the number of items is {'ambiguous' if sizes else 'unknown'}: {sorted(sizes)}",
                        hint="pass n_items, seen and relevant built over the same item catalogue")
    n_items = sizes.pop()
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be an integer >= 1, got {k!r}", setting="eval.k", hint="use e.g. k=[5, 10, 20]")
    if with_ranks and relevant is None:
        raise DataError("ranks of held-out items were asked for without the held-out items",
                        hint="pass relevant=UserItems of the split's items, or with_ranks=False")
    users = np.asarray(users, dtype=np.int64).ravel()
    n_users_known = min((s.n_users for s in (seen, relevant) if s is not None), default=None)
    if len(users) and (users.min() < 0 or (n_users_known is not None and users.max() >= n_users_known)):
        raise DataError(f"user indices must lie in [0, {n_users_known}), found [{users.min()}, {users.max()}]",
                        column="user_idx", hint="evaluate only users from the id map the item sets were built with")
    batch = batch_size_for(n_items, memory_budget_bytes)
    # rank comparisons: a gathered block and a 0/1 block of half a batch each, reused across batches
    buffers = {"rows": max(1, batch // 2)} if with_ranks else None
    with torch.no_grad():
        for start in range(0, len(users), batch):
            yield _score_block(score, users[start:start + batch], int(k), n_items, seen, relevant, buffers)


def concat_topk(parts: Sequence[TopK]) -> TopK:
    """Join batches in order into one :class:`TopK` (ranks' ``row`` re-based to the joined rows).

    >>> empty = TopK(np.zeros(0, np.int64), np.zeros((0, 2), np.int64), np.zeros((0, 2), np.float32),
    ...              np.zeros(0, np.int64))
    >>> concat_topk([empty, empty]).items.shape
    (0, 2)
    """
    if not parts:
        raise DataError("no top-k batches to join", hint="evaluate at least one user")
    ranks = None
    if all(part.ranks is not None for part in parts):
        offsets = np.cumsum([0] + [len(part.users) for part in parts[:-1]])
        fields = ("item", "score", "n_above", "n_tied", "rank")
        ranks = Ranks(row=np.concatenate([p.ranks.row + off for p, off in zip(parts, offsets)]),
                      **{f: np.concatenate([getattr(p.ranks, f) for p in parts]) for f in fields})
    return TopK(users=np.concatenate([p.users for p in parts]), items=np.concatenate([p.items for p in parts]),
                scores=np.concatenate([p.scores for p in parts]),
                n_candidates=np.concatenate([p.n_candidates for p in parts]), ranks=ranks)


def topk(score: Scorer, users: Sequence[int] | np.ndarray, k: int, **options) -> TopK:
    """All batches of :func:`iter_topk` joined; keyword options are those of :func:`iter_topk`.

    >>> import torch
    >>> score = factor_scorer(torch.ones(1, 1), torch.tensor([[1.], [1.], [2.]]))   # items 0 and 1 tie
    >>> topk(score, [0], 3, n_items=3).items.tolist()
    [[2, 0, 1]]
    """
    parts = list(iter_topk(score, users, k, **options))
    if not parts:
        return concat_topk([TopK(np.zeros(0, np.int64), np.zeros((0, k), np.int64),
                                 np.zeros((0, k), np.float32), np.zeros(0, np.int64))])
    return concat_topk(parts)
