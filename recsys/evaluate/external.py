"""Recommendation lists from outside, evaluated like a trained model: the same per-user :class:`MetricRows`.

A list read by :func:`recsys.evaluate.external_files.read_list` is joined to the
dataset's id maps by original ids, then treated by the rules models get
(:mod:`recsys.evaluate.topk`):

- **Masking**: items the user has seen are dropped, as models' scores are masked:
  on val the user's train items, on test the train and val items
  (:meth:`EvalContext.masks`). Each dropped row is counted.
- **Order**: by score, highest first; equal scores by item index, lowest first.
  The ``rank`` column is checked but does not order: users whose ranks disagree
  with their scores are counted (``n_rank_conflicts``).
- **Length**: the first ``max(eval.k)`` items after masking; users whose list is then
  shorter are counted (``n_short_lists``) and padded as models' short lists are.
- **Users**: the users evaluated are those of the split with a held-out item, exactly
  the users a model is evaluated on. A user of the split **missing from the file**
  gets an empty list: zero hits, as a model that recommends nothing relevant, and
  part of every average (counted: ``n_missing_users``). Listed users without a
  held-out item in the split are not evaluated (``n_outside_split_users``).
- **Counted, never silently dropped**: rows of unknown users or items (not in the
  id maps), duplicate (user, item) rows (the highest score is kept).

Metrics that need a score for every item are not available for lists: ``auc``
(full ranking) and the sampled protocols (``eval.protocol=uni100|pop100``, which
rank random unseen items the file has no score for). Everything computed from
top-k lists is: accuracy, beyond-accuracy, coverage, Gini, segments, item groups
and the paired tests.

>>> ctx = EvalContext.from_arrays(train=([0, 1], [0, 1]), val=([], []), test=([0, 1], [2, 0]),
...                               n_users=2, n_items=3)
>>> frame = pl.DataFrame({"user_id": ["0", "0", "1"], "item_id": ["0", "2", "2"], "score": [9.0, 1.0, 1.0]})
>>> rows, counts = list_rows(frame, ctx, "test", ks=[1])
>>> rows.topk_items.tolist(), rows.values["hit_rate@1"].tolist(), counts.n_seen_dropped
([[2], [2]], [1.0, 0.0], 1)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from recsys.errors import ConfigError, DataError
from recsys.evaluate.beyond import beyond_at_ks, held_out_popularity
from recsys.evaluate.config import EvalConfig, check_eval_config
from recsys.evaluate.context import EvalContext, split_users
from recsys.evaluate.external_files import ExternalListConfig, check_external_lists, detect_format, read_list
from recsys.evaluate.metrics import accuracy_at_ks
from recsys.evaluate.rows import MetricRows, check_ks, metric_columns

log = logging.getLogger(__name__)

FULL_RANKING_METRICS = ("auc",)     # need a score for every unseen item: never computed for a list
NO_LIST = "no list given for this split"


@dataclass
class ListCounts:
    """What happened to one list's rows on one split (a row of the ``external_lists`` table)."""

    model: str = ""
    split: str = ""
    path: str = ""
    format: str = ""
    status: str = "evaluated"
    n_rows: int = 0                  # rows in the file
    n_users: int = 0                 # distinct users in the file
    n_unknown_users: int = 0         # distinct user ids not in the dataset's user map
    n_unknown_user_rows: int = 0
    n_unknown_items: int = 0         # distinct item ids not in the item map (rows of known users)
    n_unknown_item_rows: int = 0
    n_duplicate_rows: int = 0        # repeated (user, item) rows beyond the first
    n_seen_dropped: int = 0          # rows of items the user has seen (masked)
    n_rank_conflicts: int = 0        # users whose rank column disagrees with their scores
    n_outside_split_users: int = 0   # listed users without a held-out item in the split
    n_split_users: int = 0           # evaluated users of the split
    n_missing_users: int = 0         # evaluated users with no row in the file (empty list, zero hits)
    n_short_lists: int = 0           # listed evaluated users with fewer than k items after masking
    k: int = 0                       # list length evaluated: max(eval.k)
    unavailable_metrics: str = ""    # comma-separated metrics a list cannot have

    def row(self) -> dict:
        return asdict(self)

    def warnings(self) -> str:
        """The non-zero counts worth a warning, as one phrase ('' when the list was clean).

        >>> ListCounts(n_unknown_users=2, n_unknown_user_rows=7, n_missing_users=1).warnings()
        '2 unknown users (7 rows), 1 users of the split missing (zero hits)'
        """
        parts = [(self.n_unknown_users, f"{self.n_unknown_users} unknown users ({self.n_unknown_user_rows} rows)"),
                 (self.n_unknown_items, f"{self.n_unknown_items} unknown items ({self.n_unknown_item_rows} rows)"),
                 (self.n_duplicate_rows, f"{self.n_duplicate_rows} duplicate rows"),
                 (self.n_seen_dropped, f"{self.n_seen_dropped} seen items dropped"),
                 (self.n_rank_conflicts, f"{self.n_rank_conflicts} users whose ranks disagree with their scores"),
                 (self.n_outside_split_users, f"{self.n_outside_split_users} users without held-out items"),
                 (self.n_missing_users, f"{self.n_missing_users} users of the split missing (zero hits)"),
                 (self.n_short_lists, f"{self.n_short_lists} lists shorter than {self.k}")]
        return ", ".join(text for count, text in parts if count)


def _index_frame(ids: np.ndarray, id_column: str, idx_column: str) -> pl.DataFrame:
    return pl.DataFrame({id_column: pl.Series(ids.astype(str), dtype=pl.Utf8),
                         idx_column: np.arange(len(ids), dtype=np.int64)})


def _join_ids(frame: pl.DataFrame, ctx: EvalContext, counts: ListCounts) -> pl.DataFrame:
    """Rows of known users and items with ``user_idx``, ``item_idx``; unknown ones counted."""
    joined = frame.join(_index_frame(ctx.user_ids, "user_id", "user_idx"), on="user_id", how="left")
    unknown = joined.filter(pl.col("user_idx").is_null())
    counts.n_unknown_user_rows, counts.n_unknown_users = unknown.height, unknown["user_id"].n_unique()
    joined = joined.filter(pl.col("user_idx").is_not_null())
    joined = joined.join(_index_frame(ctx.item_ids, "item_id", "item_idx"), on="item_id", how="left")
    unknown = joined.filter(pl.col("item_idx").is_null())
    counts.n_unknown_item_rows, counts.n_unknown_items = unknown.height, unknown["item_id"].n_unique()
    joined = joined.filter(pl.col("item_idx").is_not_null())
    deduped = joined.group_by("user_idx", "item_idx").agg(pl.col("score").max(), pl.col("rank").min())
    counts.n_duplicate_rows = joined.height - deduped.height
    return deduped


def _rank_conflicts(frame: pl.DataFrame) -> int:
    """Users whose scores rise somewhere along their rank order (rank given)."""
    ranked = frame.filter(pl.col("rank").is_not_null()).sort("user_idx", "rank", "item_idx")
    rising = ranked.with_columns((pl.col("score").diff().over("user_idx") > 0).alias("rising"))
    return rising.filter(pl.col("rising"))["user_idx"].n_unique()


def list_rows(frame: pl.DataFrame, ctx: EvalContext, split: str, ks: Sequence[int], *,
              recall_denominator: str = "relevant", beyond: bool = True) -> tuple[MetricRows, ListCounts]:
    """Metric rows of the split's users from a list frame (``user_id, item_id, score[, rank]``), and its counts.

    Rows are those :func:`recsys.evaluate.context.evaluate_split` gives a model,
    without ``auc``; ``beyond`` adds the beyond-accuracy columns (``ctx.stats``).
    """
    ks = check_ks(ks)
    top_k = max(ks)
    if "rank" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Int64).alias("rank"))
    counts = ListCounts(split=split, k=top_k, n_rows=frame.height, n_users=frame["user_id"].n_unique())
    listed = _join_ids(frame.select("user_id", "item_id", "score", "rank"), ctx, counts)
    relevant, seen = ctx.masks(split)
    masked = seen.has(listed["user_idx"].to_numpy(), listed["item_idx"].to_numpy())
    counts.n_seen_dropped = int(masked.sum())
    listed = listed.filter(pl.Series(~masked))
    counts.n_rank_conflicts = _rank_conflicts(listed)

    held_out = relevant.difference(seen)
    users = split_users(relevant)                                   # as evaluate_split: users with held-out items
    n_relevant = held_out.counts()[users]
    n_masked = relevant.counts()[users] - n_relevant
    included = n_relevant > 0
    in_split = np.zeros(ctx.n_users, dtype=bool)
    in_split[users[included]] = True
    is_listed = np.zeros(ctx.n_users, dtype=bool)
    is_listed[listed["user_idx"].to_numpy()] = True
    counts.n_outside_split_users = int(np.count_nonzero(is_listed & ~in_split))
    ordered = (listed.filter(pl.Series(in_split[listed["user_idx"].to_numpy()]))
               .sort(["user_idx", "score", "item_idx"], descending=[False, True, False])
               .with_columns(pl.int_range(pl.len()).over("user_idx").alias("position")))
    lengths = np.bincount(ordered["user_idx"].to_numpy(), minlength=ctx.n_users)[users]
    counts.n_split_users = int(included.sum())
    counts.n_missing_users = int(np.count_nonzero(included & (lengths == 0)))
    counts.n_short_lists = int(np.count_nonzero(included & (lengths > 0) & (lengths < top_k)))

    kept = ordered.filter(pl.col("position") < top_k)
    rows_at = np.searchsorted(users, kept["user_idx"].to_numpy())   # (P,) row of each kept entry
    slots = kept["position"].to_numpy()
    topk_items = np.full((len(users), top_k), -1, dtype=np.int32)
    topk_scores = np.full((len(users), top_k), -np.inf, dtype=np.float32)
    topk_items[rows_at, slots] = kept["item_idx"].to_numpy()
    topk_scores[rows_at, slots] = kept["score"].to_numpy()

    names = metric_columns(ks, auc=False, stats=ctx.stats if beyond else None)
    values = {name: np.full(len(users), np.nan) for name in names}
    rows = np.flatnonzero(included)
    if len(rows):
        chosen, items = users[rows], topk_items[rows].astype(np.int64)   # (n,), (n, K)
        found = accuracy_at_ks(held_out.contains(chosen, items), n_relevant[rows], ks, recall_denominator)
        if beyond:
            found.update(beyond_at_ks(items, ks, ctx.stats))
            found["test_popularity"] = held_out_popularity(held_out, chosen, ctx.stats.popularity)
        for name in names:
            values[name][rows] = found[name]
    return MetricRows(users, n_relevant, n_masked, values, topk_items, topk_scores, ctx.n_items), counts


def _unavailable(cfg: EvalConfig) -> str:
    return ",".join(FULL_RANKING_METRICS) if cfg.auc else ""


def evaluate_lists(lists: Sequence[ExternalListConfig], ctx: EvalContext, cfg: EvalConfig,
                   models: Sequence[str] = (), *, several_datasets: bool = False,
                   ) -> tuple[dict[str, dict[str, MetricRows]], list[ListCounts]]:
    """``({name: {split: MetricRows}}, counts)`` of ``lists`` on the splits of ``cfg.splits`` they answer.

    Lists tied to another dataset (``dataset`` set to another label than ``ctx.dataset``)
    are left out; in a run of ``several_datasets`` every list must name its dataset.
    A list whose split is not evaluated, or any list under a sampled protocol, gets a
    counts row with the reason in ``status`` and no metric rows, and so does a list
    name without a list for one of ``cfg.splits`` (``path`` empty); every non-zero
    count is logged as a warning. ``models`` are the trained models' names (a list may not
    take one).
    """
    check_eval_config(cfg)
    check_external_lists(lists)
    unplaced = [i for i, entry in enumerate(lists) if not entry.dataset]
    if several_datasets and unplaced:
        raise ConfigError("the run has several datasets and the list does not say which it is for",
                          setting=f"eval.external[{unplaced[0]}].dataset", hint="set dataset: <the dataset's label>")
    taken = sorted({entry.name for entry in lists if entry.dataset in ("", ctx.dataset)} & set(models))
    if taken:
        raise ConfigError(f"list name(s) {taken} are also trained models' names", setting="eval.external",
                          hint="name the lists differently (e.g. prod_ranker)")
    rows: dict[str, dict[str, MetricRows]] = {}
    counts: list[ListCounts] = []
    frames: dict[tuple[str, str], pl.DataFrame] = {}
    for entry in lists:
        if entry.dataset and entry.dataset != ctx.dataset:
            continue
        fmt = detect_format(entry.path, entry.format)
        label = ListCounts(model=entry.name, split=entry.split, path=str(entry.path), format=fmt,
                           k=max(cfg.k), unavailable_metrics=_unavailable(cfg))
        if entry.split not in cfg.splits:
            counts.append(_skipped(label, f"not evaluated: split {entry.split} is not in eval.splits"))
            continue
        if cfg.protocol != "full":
            counts.append(_skipped(label, f"not evaluated: eval.protocol={cfg.protocol} ranks sampled items the "
                                          f"list has no scores for"))
            continue
        key = (str(entry.path), fmt)
        if key not in frames:
            frames[key] = read_list(str(entry.path), fmt)
        result, found = list_rows(frames[key], ctx, entry.split, cfg.k, recall_denominator=cfg.recall_denominator)
        for name in ("model", "split", "path", "format", "unavailable_metrics"):
            setattr(found, name, getattr(label, name))
        rows.setdefault(entry.name, {})[entry.split] = result
        counts.append(found)
        if found.warnings():
            log.warning("list %s (%s split, %s): %s", entry.name, entry.split, entry.path, found.warnings())
        if found.n_split_users and found.n_missing_users == found.n_split_users:
            log.warning("list %s (%s split): no evaluated user of the split is in the file", entry.name, entry.split)
    for name, by_split in rows.items():
        for split in (s for s in cfg.splits if s not in by_split):
            log.info("list %s has no %s list: its %s rows are absent", name, split, split)
            counts.append(ListCounts(model=name, split=split, status=NO_LIST, k=max(cfg.k),
                                     unavailable_metrics=_unavailable(cfg)))
    return rows, counts


def _skipped(counts: ListCounts, status: str) -> ListCounts:
    counts.status = status
    log.warning("list %s (%s split): %s", counts.model, counts.split, status)
    return counts


def check_lists_have_users(rows: dict[str, dict[str, MetricRows]]) -> None:
    """Raise :class:`DataError` when no list has an evaluated user (nothing to report).

    >>> check_lists_have_users({})
    Traceback (most recent call last):
    ...
    recsys.errors.DataError: no list was evaluated on any split. What to do: check the lists' split (val or test) and eval.splits
    """
    if not any(r.evaluated.any() for by_split in rows.values() for r in by_split.values()):
        raise DataError("no list was evaluated on any split", hint="check the lists' split (val or test) and eval.splits")
