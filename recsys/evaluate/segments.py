"""Named segments of a split: user segments (subsets of users) and item groups (subsets of held-out items).

A **user segment** is a set of users; its metrics are the averages over its
evaluated users of the same per-user values as ``all``. An **item group** is a
set of items; its metrics re-evaluate each user's top-k list against only the
user's held-out items in the group (users with none are left out), so
``items_tail`` answers "how well are tail items that users went on to like found".
Only accuracy metrics are re-evaluated for item groups (list properties such as
novelty or coverage do not depend on which held-out items count).

Names (stable; the report's ``segment`` column, docs/evaluation.md):

=========================  ==================================================================
``all``                    every user with a held-out item in the split
``activity_q1`` .. ``q4``  quartiles of training interactions among the split's users
                           (``q1`` least active); a user with a count equal to a quartile
                           edge belongs to the lower quartile; empty quartiles are left out
``cold_start_users``       users with at most ``eval.cold_start_max`` training interactions
``holdout_users``          users with no training interaction (a user-disjoint holdout)
``user_<col>=<value>``     users whose attribute ``col`` (users table) is ``value``
``items_head``             the ``eval.long_tail_head_fraction`` most popular items of the
                           catalogue (by training users; the complement of ``long_tail@k``)
``items_torso``            the rest, most popular first, until they hold half of the
                           rest's training interactions
``items_tail``             the remaining, least popular items (including cold ones)
``cold_items``             items with no training interaction
``item_<col>=<value>``     items whose attribute ``col`` (item table) is ``value``
=========================  ==================================================================

Attribute columns: text values split on ``|`` (``Action|Comedy`` is in both genre
groups); the ``eval.max_attribute_values`` most frequent values of a column make
segments (ties by value); a numeric column with more distinct values than that is
cut into quartile ranges (``user_age=25-34``, bounds inclusive). A text column with
more distinct values than both that cap and half its non-null rows (titles,
descriptions, zip codes) is free text or an id and makes no segment. Segments without any user are left out.

>>> n_train = np.array([0, 1, 2, 3, 10, 20])
>>> {k: v.tolist() for k, v in activity_segments(n_train, np.arange(6)).items()}
{'activity_q1': [0, 1], 'activity_q2': [2], 'activity_q3': [3], 'activity_q4': [4, 5]}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from recsys.evaluate.beyond import long_tail_mask
from recsys.evaluate.metrics import accuracy_at_ks
from recsys.evaluate.rows import MetricRows
from recsys.evaluate.useritems import UserItems

ALL = "all"
ITEM_GROUP_PREFIXES = ("items_", "cold_items", "item_")


def is_item_group(name: str) -> bool:
    """Whether a segment name is an item group (re-evaluated), not a user segment.

    >>> is_item_group("items_tail"), is_item_group("item_genres=Drama"), is_item_group("user_gender=F")
    (True, True, False)
    """
    return name.startswith(ITEM_GROUP_PREFIXES)


def activity_segments(n_train: np.ndarray, users: np.ndarray) -> dict[str, np.ndarray]:
    """Quartiles of training interactions among ``users`` (``activity_q1`` least active)."""
    users = np.asarray(users, dtype=np.int64)
    if not len(users):
        return {}
    counts = np.asarray(n_train)[users]
    edges = np.quantile(counts, [0.25, 0.5, 0.75])
    quartile = np.searchsorted(edges, counts, side="left")       # count <= edge -> that quartile or lower
    out = {f"activity_q{q + 1}": users[quartile == q] for q in range(4)}
    return {name: members for name, members in out.items() if len(members)}


def popularity_groups(popularity: np.ndarray, head_fraction: float) -> dict[str, np.ndarray]:
    """``items_head``, ``items_torso``, ``items_tail`` as boolean masks over the catalogue (see the module doc).

    >>> groups = popularity_groups(np.array([50, 8, 6, 1, 1, 0, 9, 30, 2, 3]), head_fraction=0.2)
    >>> {k: np.flatnonzero(v).tolist() for k, v in groups.items()}
    {'items_head': [0, 7], 'items_torso': [1, 6], 'items_tail': [2, 3, 4, 5, 8, 9]}
    """
    popularity = np.asarray(popularity, dtype=np.float64)
    tail = long_tail_mask(popularity, head_fraction)
    order = np.lexsort((np.arange(len(popularity)), -popularity))
    order = order[tail[order]]                                    # long-tail items, most popular first
    before = np.cumsum(popularity[order]) - popularity[order]     # interactions of the more popular ones
    total = popularity[order].sum()
    torso = np.zeros(len(popularity), dtype=bool)
    torso[order[before < total / 2]] = total > 0
    return {"items_head": ~tail, "items_torso": torso, "items_tail": tail & ~torso}


def _value_lists(column: pl.Series, cap: int) -> tuple[pl.Series, list[str]] | None:
    """Each row's values (a list) and the values that make segments; None for free-text/id columns."""
    if column.dtype.is_numeric():
        present = column.drop_nulls()
        if present.n_unique() > cap and len(present):
            edges = np.unique(np.quantile(present.to_numpy(), [0.25, 0.5, 0.75]))
            values = column.to_numpy()
            bins = np.searchsorted(edges, values, side="left")
            names = []
            for b in range(len(edges) + 1):
                members = present.to_numpy()[np.searchsorted(edges, present.to_numpy(), side="left") == b]
                names.append(f"{_fmt(members.min())}-{_fmt(members.max())}" if len(members) else None)
            labels = [None if v is None or (isinstance(v, float) and np.isnan(v)) else names[b]
                      for v, b in zip(column.to_list(), bins)]
            lists = pl.Series([[x] if x is not None else [] for x in labels], dtype=pl.List(pl.Utf8))
            return lists, [n for n in names if n is not None]
    text = column.cast(pl.Utf8)
    lists = text.str.split("|").list.eval(pl.element().str.strip_chars()).list.eval(
        pl.element().filter(pl.element() != "")).fill_null([])
    exploded = lists.explode().drop_nulls()
    non_null = int(text.drop_nulls().len())
    if not len(exploded) or exploded.n_unique() > max(cap, non_null / 2):
        return None
    counts = exploded.value_counts().sort(["count", exploded.name], descending=[True, False])
    return lists, counts[exploded.name].head(cap).to_list()


def _fmt(value) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def attribute_segments(frame: pl.DataFrame | None, idx_column: str, prefix: str, cap: int) -> dict[str, np.ndarray]:
    """``{"<prefix>_<col>=<value>": indices}`` for every usable attribute column of ``frame`` (see the module doc).

    >>> users = pl.DataFrame({"user_idx": [0, 1, 2, 3], "gender": ["F", "M", "F", None]})
    >>> {k: v.tolist() for k, v in attribute_segments(users, "user_idx", "user", 20).items()}
    {'user_gender=F': [0, 2], 'user_gender=M': [1]}
    """
    out: dict[str, np.ndarray] = {}
    if frame is None:
        return out
    idx = frame[idx_column].to_numpy().astype(np.int64)
    for name in frame.columns:
        if name == idx_column:
            continue
        found = _value_lists(frame[name], cap)
        if found is None:
            continue
        lists, values = found
        exploded = pl.DataFrame({"idx": idx, "value": lists}).explode("value").drop_nulls()
        for value in values:
            members = np.unique(exploded.filter(pl.col("value") == value)["idx"].to_numpy())
            if len(members):
                out[f"{prefix}_{name}={value}"] = members
    return out


def user_segments(ctx, users: np.ndarray, *, cold_start_max: int, max_attribute_values: int) -> dict[str, np.ndarray]:
    """Named user segments among ``users`` (a split's users), ``all`` first; each an ascending ``user_idx`` array."""
    users = np.unique(np.asarray(users, dtype=np.int64))
    n_train = ctx.n_train()
    out = {ALL: users, **activity_segments(n_train, users)}
    for name, members in (("cold_start_users", users[n_train[users] <= cold_start_max]),
                          ("holdout_users", users[n_train[users] == 0])):
        if len(members):
            out[name] = members
    for name, members in attribute_segments(ctx.user_attributes, "user_idx", "user", max_attribute_values).items():
        members = np.intersect1d(members, users, assume_unique=True)
        if len(members):
            out[name] = members
    return out


def item_groups(ctx, *, head_fraction: float, max_attribute_values: int) -> dict[str, np.ndarray]:
    """Named item groups as ``(n_items,)`` boolean masks: popularity groups, cold items, item attributes."""
    out = dict(popularity_groups(ctx.stats.popularity, head_fraction))
    out["cold_items"] = np.asarray(ctx.cold_items(), dtype=bool)
    for name, members in attribute_segments(ctx.item_attributes, "item_idx", "item", max_attribute_values).items():
        mask = np.zeros(ctx.n_items, dtype=bool)
        mask[members] = True
        out[name] = mask
    return {name: mask for name, mask in out.items() if mask.any()}


def item_group_rows(rows: MetricRows, held_out: UserItems, group: np.ndarray, ks: Sequence[int],
                    recall_denominator: str = "relevant") -> MetricRows:
    """Accuracy of the same top-k lists when only held-out items in ``group`` count as relevant.

    ``held_out``: the split's held-out items after masking (``relevant.difference(seen)``).
    Users with no held-out item in the group get ``n_relevant = 0`` (excluded, NaN).

    >>> rows = MetricRows(np.array([0, 1]), np.array([2, 1]), np.zeros(2, np.int64), {},
    ...                   np.array([[3, 1], [2, 0]], np.int32), np.zeros((2, 2), np.float32), n_items=4)
    >>> held_out = UserItems.from_pairs([0, 0, 1], [1, 2, 0], n_users=2, n_items=4)
    >>> out = item_group_rows(rows, held_out, np.array([False, True, True, False]), [2])
    >>> out.n_relevant.tolist(), out.values["recall@2"].tolist()
    ([2, 0], [0.5, nan])
    """
    users = rows.user_idx
    positions, items = held_out.take(users)
    keep = np.asarray(group, dtype=bool)[items]
    restricted = UserItems._from_sorted(positions[keep], items[keep], len(users), held_out.n_items)
    n_relevant = restricted.counts()
    included = np.flatnonzero(n_relevant > 0)
    hits = restricted.contains(included, rows.topk_items[included])
    computed = accuracy_at_ks(hits, n_relevant[included], list(ks), recall_denominator)
    values = {}
    for name, value in computed.items():
        values[name] = np.full(len(users), np.nan)
        values[name][included] = value
    return MetricRows(users, n_relevant, np.zeros(len(users), np.int64), values, rows.topk_items,
                      rows.topk_scores, rows.n_items)
