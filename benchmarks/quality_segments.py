"""Per-user test values on three segments and paired tests between models, for ``benchmarks.quality``.

Segments of the test split (users known to training; training and validation items masked,
full ranking over every catalogue item):

- ``all``: every user with a test item; NDCG@10 against all of their test items;
- ``cold_items``: users with a test item that has no training interaction; NDCG@10 against
  those items only (the list is the same; only which held-out items count changes);
- ``light_users``: the least active quarter of the ``all`` users by training interactions
  (the evaluation stage's ``activity_q1``).

>>> import numpy as np
>>> values = {"a": {"all": (np.array([0, 1, 2]), np.array([0.1, 0.2, 0.3]))},
...           "b": {"all": (np.array([0, 1, 2]), np.array([0.3, 0.3, 0.6]))}}
>>> row = paired_rows(values, "a")[0]
>>> row["candidate"], row["segment"], round(row["delta"], 3), row["n_users"]
('b', 'all', 0.2, 3)
"""

from __future__ import annotations

import numpy as np

K = 10
SEGMENTS = ("all", "cold_items", "light_users")


def segment_values(ranking, ds, data, k: int = K) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{segment: (users, per-user NDCG@k)}`` of a ``benchmarks.quality.TestRanking``; a segment
    without users is left out."""
    from recsys.evaluate.metrics import ndcg_at_k
    from recsys.evaluate.segments import activity_segments
    from recsys.evaluate.useritems import UserItems

    users, items, relevant = ranking.users, ranking.items, ranking.relevant
    out = {"all": (users, ndcg_at_k(relevant.contains(users, items), relevant.counts()[users], k))}

    seen_train = data.seen()
    trained_items = np.zeros(data.n_items, dtype=bool)
    trained_items[seen_train.indices] = True
    test = ds.split("test").drop_nulls(["user_idx", "item_idx"])
    test = test.filter(test["user_idx"] < data.n_users)
    cold = ~trained_items[test["item_idx"].to_numpy()]
    cold_relevant = UserItems.from_pairs(test["user_idx"].to_numpy()[cold], test["item_idx"].to_numpy()[cold],
                                         n_users=data.n_users, n_items=data.n_items)
    has_cold = cold_relevant.counts()[users] > 0
    if has_cold.any():
        hits = cold_relevant.contains(users[has_cold], items[has_cold])
        out["cold_items"] = (users[has_cold], ndcg_at_k(hits, cold_relevant.counts()[users[has_cold]], k))

    light = activity_segments(seen_train.counts(), users).get("activity_q1")
    if light is not None and len(light):
        keep = np.isin(users, light)
        out["light_users"] = (users[keep], out["all"][1][keep])
    return out


def paired_rows(values: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], baseline: str) -> list[dict]:
    """Paired t-tests of every other model against ``baseline`` on each segment, Holm-adjusted over them all."""
    from recsys.evaluate.significance import adjust_p_values, paired_test

    rows = []
    for candidate, segments in values.items():
        if candidate == baseline:
            continue
        for segment, (users, candidate_values) in segments.items():
            if segment not in values[baseline]:
                continue
            base_users, base_values = values[baseline][segment]
            common, mine, theirs = np.intersect1d(users, base_users, return_indices=True)
            result = paired_test(base_values[theirs], candidate_values[mine], "paired_t")
            rows.append({"baseline": baseline, "candidate": candidate, "segment": segment,
                         "n_users": int(common.size), "delta": float(result.delta), "p": float(result.p_value)})
    adjusted = adjust_p_values([row["p"] for row in rows], "holm") if rows else []
    for row, p in zip(rows, adjusted):
        row["p_holm"] = float(p)
    return rows


def segment_table(rows: list[dict]) -> str:
    """Mean ± sd over split seeds of each model's per-segment mean NDCG@10 (rows from ``benchmarks.quality``)."""
    from benchmarks.quality import mean_sd

    lines = ["| model | " + " | ".join(f"{s} NDCG@{K} (users)" for s in SEGMENTS) + " |",
             "|---|" + "---|" * len(SEGMENTS)]
    for name in dict.fromkeys(row["model"] for row in rows):
        mine = [row for row in rows if row["model"] == name]
        cells = []
        for segment in SEGMENTS:
            found = [row["segments"][segment] for row in mine if segment in row.get("segments", {})]
            users = ", ".join(str(f["n_users"]) for f in found)
            cells.append(f"{mean_sd([f['ndcg'] for f in found])} ({users})" if found else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(tests: list[dict]) -> str:
    """One line per (seed, candidate, segment): delta of NDCG@10 against the baseline and Holm-adjusted p."""
    lines = ["| seed | candidate vs baseline | segment | users | delta NDCG@10 | p (Holm) |", "|---|---|---|---|---|---|"]
    for row in tests:
        lines.append(f"| {row['seed']} | {row['candidate']} vs {row['baseline']} | {row['segment']} | {row['n_users']} "
                     f"| {row['delta']:+.4f} | {row['p_holm']:.2g} |")
    return "\n".join(lines)
