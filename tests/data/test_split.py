"""Splits: hand-computed cases, an independent pure-Python reference, and Hypothesis properties."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data import split as split_module
from recsys.data.config import SplitConfig
from recsys.data.split import (
    SPLIT,
    check_split_config,
    frame_cutoffs,
    local_count_le_many,
    split_frame,
    split_parts,
    splitmix64,
    stable_hash,
    temporal_cutoffs,
)
from recsys.errors import ConfigError, DataError

M64 = (1 << 64) - 1
CANON = ["user_id", "item_id", "timestamp", "rating"]


def frame_of(rows):
    return pl.DataFrame(rows, schema={"user_id": pl.Utf8, "item_id": pl.Utf8, "timestamp": pl.Int64,
                                      "rating": pl.Float32}, orient="row")


def one_user(n, user="u", start=0):
    return frame_of([(user, f"i{k:03d}", start + k, None) for k in range(n)])


def counts(frame):
    out = frame[SPLIT].value_counts()
    return {row[0]: row[1] for row in out.rows()}


def canonical_rows(frame):
    """Rows with their split as a sorted multiset (order-free comparison)."""
    return sorted(frame.select(CANON + [SPLIT]).rows(), key=repr)


# ---------------------------------------------------------------- reference


def py_splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def py_hash(text):
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def py_key(seed, salt, user, item, ts):
    key = py_splitmix64((seed ^ salt) & M64)
    key = py_splitmix64(key ^ py_hash(user))
    key = py_splitmix64(key ^ py_hash(item))
    return py_splitmix64(key ^ (ts & M64))


def reference_split(frame, cfg):
    """Pure-Python statement of the documented random / leave_last rules."""
    by_user = {}
    for index, (u, i, t, r) in enumerate(frame.select(CANON).rows()):
        by_user.setdefault(u, []).append((index, u, i, t, r))
    labels = [None] * frame.height
    for rows in by_user.values():
        n = len(rows)
        nullsafe = lambda r: (r is None, r if r is not None else 0.0)  # noqa: E731  nulls last
        if cfg.protocol == "random":
            salt = split_module._SALT_RANDOM
            ordered = sorted(rows, key=lambda x: (py_key(cfg.seed, salt, x[1], x[2], x[3]), x[2], x[3], nullsafe(x[4])))
            r1, r2 = cfg.ratios[0], cfg.ratios[1]
            b1 = math.floor(n * round(r1, 12) + 0.5)
            b2 = math.floor(n * round(r1 + r2, 12) + 0.5)
            for pos, row in enumerate(ordered):
                labels[row[0]] = ("train" if n <= 2 or pos < b1 else "val" if pos < b2 else "test")
        else:
            salt = split_module._SALT_LEAVE_LAST
            ordered = sorted(rows, key=lambda x: (x[3], py_key(cfg.seed, salt, x[1], x[2], x[3]), x[2], nullsafe(x[4])))
            k = cfg.leave_last_n
            for pos, row in enumerate(ordered):
                back = n - 1 - pos
                labels[row[0]] = ("train" if n < 2 * k + 1 else "test" if back < k else "val" if back < 2 * k
                                  else "train")
    return labels


# ---------------------------------------------------------------- hashing


def test_splitmix64_matches_the_published_sequence_and_the_python_reference():
    assert int(splitmix64(np.array([0], dtype=np.uint64))[0]) == 0xE220A8397B1DCDAF
    values = [0, 1, 12345, M64, 1 << 63]
    assert splitmix64(np.array(values, dtype=np.uint64)).tolist() == [py_splitmix64(v) for v in values]


def test_stable_hash_is_blake2b_of_each_id():
    ids = pl.Series(["u1", "é", "u1", ""])
    assert stable_hash(ids).tolist() == [py_hash(s) for s in ids.to_list()]
    assert py_hash("u1") == int.from_bytes(hashlib.blake2b(b"u1", digest_size=8).digest(), "little")


# ---------------------------------------------------------------- random


@pytest.mark.parametrize("n, ratios, expected", [
    (10, [0.8, 0.1, 0.1], {"train": 8, "val": 1, "test": 1}),
    (5, [0.5, 0.25, 0.25], {"train": 3, "val": 1, "test": 1}),   # 2.5 -> 3, 3.75 -> 4 (round half up)
    (3, [0.8, 0.1, 0.1], {"train": 2, "val": 1}),                # 2.4 -> 2, 2.7 -> 3
    (7, [0.6, 0.0, 0.4], {"train": 4, "test": 3}),               # 4.2 -> 4; val ratio 0
    (2, [0.4, 0.3, 0.3], {"train": 2}),                          # 1-2 rows: all train
    (1, [0.4, 0.3, 0.3], {"train": 1}),
])
def test_random_split_boundaries_by_hand(n, ratios, expected):
    out = split_frame(one_user(n), SplitConfig(protocol="random", ratios=ratios, seed=3))
    assert counts(out) == expected


def test_random_split_matches_the_reference_and_keeps_row_order():
    frame = pl.concat([one_user(13, "alice"), one_user(4, "bob", 100), one_user(9, "carol", 50)])
    frame = frame.sample(fraction=1.0, shuffle=True, seed=1)
    cfg = SplitConfig(protocol="random", ratios=[0.7, 0.15, 0.15], seed=11)
    out = split_frame(frame, cfg)
    assert out.drop(SPLIT).equals(frame)
    assert out[SPLIT].to_list() == reference_split(frame, cfg)


def test_seed_changes_the_random_split_and_the_same_seed_repeats_it():
    frame = one_user(200)
    a = split_frame(frame, SplitConfig(protocol="random", seed=1))[SPLIT]
    b = split_frame(frame, SplitConfig(protocol="random", seed=2))[SPLIT]
    assert split_frame(frame, SplitConfig(protocol="random", seed=1))[SPLIT].equals(a)
    assert not a.equals(b)
    assert counts(split_frame(frame, SplitConfig(protocol="random", seed=2))) == {"train": 160, "val": 20, "test": 20}


def test_splits_are_pinned_for_a_fixed_seed():
    # Guards against silent changes to hashing or ordering (they would change every published split).
    random = split_frame(one_user(10), SplitConfig(protocol="random", seed=42))
    assert random[SPLIT].to_list() == ["val"] + ["train"] * 8 + ["test"]
    users = pl.DataFrame({"user_id": [f"user{k}" for k in range(10)], "item_id": ["a"] * 10, "timestamp": [1] * 10})
    holdout = split_frame(users, SplitConfig(protocol="user_holdout", seed=42, ratios=[0.5, 0.2, 0.3]))
    assert holdout[SPLIT].to_list() == ["train"] * 3 + ["val"] + ["train"] * 2 + ["val"] + ["train"] * 3


# ---------------------------------------------------------------- temporal


def test_temporal_split_with_cutoffs_by_hand():
    frame = frame_of([("u", "a", 1, None), ("u", "b", 5, None), ("v", "c", 5, None), ("v", "d", 9, None),
                      ("w", "e", 10, None)])
    out = split_frame(frame, SplitConfig(protocol="temporal", cutoffs=[5, 10]))
    assert out[SPLIT].to_list() == ["train", "val", "val", "val", "test"]
    override = split_frame(frame, SplitConfig(protocol="temporal", cutoffs=[5, 10]), cutoffs=[2, 6])
    assert override[SPLIT].to_list() == ["train", "val", "val", "test", "test"]


def test_temporal_split_from_ratios_by_hand():
    # 10 rows; k1 = 8, k2 = 9: c1 = 9th smallest = 8, c2 = 10th smallest = 9
    frame = frame_of([("u", f"i{t}", t, None) for t in [3, 1, 4, 1, 5, 9, 2, 6, 8, 7]])
    out = split_frame(frame, SplitConfig(protocol="temporal", ratios=[0.8, 0.1, 0.1]))
    assert frame_cutoffs(frame, [0.8, 0.1, 0.1]) == [8, 9]
    assert counts(out) == {"train": 8, "val": 1, "test": 1}
    assert out.filter(pl.col(SPLIT) == "test")["timestamp"].to_list() == [9]


def test_temporal_ties_at_a_cutoff_go_to_the_later_split():
    frame = frame_of([("u", f"i{k}", t, None) for k, t in enumerate([1, 2, 3, 3, 3, 3, 4, 5, 6, 7])])
    out = split_frame(frame, SplitConfig(protocol="temporal", ratios=[0.4, 0.3, 0.3]))
    assert counts(out) == {"train": 2, "val": 5, "test": 3}   # c1 = 3 (5th smallest), c2 = 5 (8th)


def test_temporal_cutoffs_need_few_passes_over_a_wide_range():
    rng = np.random.default_rng(0)
    ts = rng.integers(1_000_000_000, 1_700_000_000, size=5000)
    calls = []
    local = local_count_le_many(ts)

    def counting(thresholds):
        calls.append(len(thresholds))
        return local(thresholds)

    cuts = temporal_cutoffs(counting, int(ts.min()), int(ts.max()), len(ts), [0.8, 0.1, 0.1])
    ordered = np.sort(ts)
    assert cuts == [int(ordered[4000]), int(ordered[4500])]
    assert len(calls) <= 5 and max(calls) <= 2 * 1023


# ---------------------------------------------------------------- leave_last


def test_leave_last_by_hand():
    frame = frame_of([("u", "a", 3, None), ("u", "b", 1, None), ("u", "c", 2, None), ("u", "d", 4, None),
                      ("v", "a", 1, None), ("v", "b", 2, None)])
    out = split_frame(frame, SplitConfig(protocol="leave_last", leave_last_n=1))
    assert out[SPLIT].to_list() == ["val", "train", "train", "test", "train", "train"]
    two = split_frame(one_user(5), SplitConfig(protocol="leave_last", leave_last_n=2))
    assert two[SPLIT].to_list() == ["train", "val", "val", "test", "test"]
    assert set(split_frame(one_user(4), SplitConfig(protocol="leave_last", leave_last_n=2))[SPLIT]) == {"train"}


def test_leave_last_breaks_timestamp_ties_the_same_way_whatever_the_row_order():
    frame = frame_of([("u", "a", 1, None), ("u", "b", 5, None), ("u", "c", 5, None), ("u", "d", 5, None)])
    cfg = SplitConfig(protocol="leave_last", seed=7)
    first = canonical_rows(split_frame(frame, cfg))
    for seed in range(5):
        assert canonical_rows(split_frame(frame.sample(fraction=1.0, shuffle=True, seed=seed), cfg)) == first
    assert split_frame(frame, cfg)[SPLIT].to_list() == reference_split(frame, cfg)


# ---------------------------------------------------------------- user_holdout


def test_user_holdout_keeps_users_whole_and_matches_the_fractions():
    frame = pl.concat([one_user(3, f"user{k}") for k in range(3000)])
    out = split_frame(frame, SplitConfig(protocol="user_holdout", ratios=[0.7, 0.1, 0.2], seed=5))
    per_user = out.group_by("user_id").agg(pl.col(SPLIT).n_unique().alias("k"), pl.col(SPLIT).first())
    assert (per_user["k"] == 1).all()
    shares = per_user[SPLIT].value_counts(normalize=True)
    share = dict(shares.rows())
    for name, p in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        assert abs(share[name] - p) < 4 * math.sqrt(p * (1 - p) / 3000)


# ---------------------------------------------------------------- settings and input errors


@pytest.mark.parametrize("cfg, setting, text", [
    (SplitConfig(protocol="chronological"), "split.protocol", "unknown split protocol 'chronological'"),
    (SplitConfig(ratios=[0.8, 0.3, 0.1]), "split.ratios", "ratios must sum to 1"),
    (SplitConfig(ratios=[0.8, 0.2]), "split.ratios", "expected 3 ratios"),
    (SplitConfig(ratios=[0.0, 0.5, 0.5]), "split.ratios", "train and test ratios must be > 0"),
    (SplitConfig(ratios=[1.2, -0.1, -0.1]), "split.ratios", "finite and >= 0"),
    (SplitConfig(protocol="leave_last", leave_last_n=0), "split.leave_last_n", "integer >= 1"),
    (SplitConfig(protocol="temporal", cutoffs=[10, 5]), "split.cutoffs", "is after the test cutoff"),
    (SplitConfig(protocol="temporal", cutoffs=[10]), "split.cutoffs", "expected two integer cutoffs"),
])
def test_impossible_split_settings_name_the_setting(cfg, setting, text):
    with pytest.raises(ConfigError) as err:
        check_split_config(cfg)
    assert f"setting '{setting}'" in str(err.value) and text in str(err.value)
    assert "What to do:" in str(err.value)


def test_split_needs_the_canonical_columns():
    with pytest.raises(DataError, match="column 'timestamp'.*needs column"):
        split_frame(pl.DataFrame({"user_id": ["u"], "item_id": ["a"]}), SplitConfig())


def test_empty_frame_gets_an_empty_split_column_and_parts():
    out = split_frame(one_user(0), SplitConfig())
    assert out.height == 0 and SPLIT in out.columns
    assert [p.height for p in split_parts(split_frame(one_user(10), SplitConfig()))] == [8, 1, 1]


# ---------------------------------------------------------------- properties

rows_strategy = st.lists(
    st.tuples(st.sampled_from([f"u{k}" for k in range(6)]), st.sampled_from([f"i{k}" for k in range(5)]),
              st.integers(0, 12), st.sampled_from([None, 1.0, 3.0, 5.0])),
    max_size=50,
)
other_users = st.lists(
    st.tuples(st.sampled_from(["x0", "x1", "x2"]), st.sampled_from(["i0", "i9"]), st.integers(0, 12),
              st.just(None)),
    max_size=15,
)
ratio_strategy = st.sampled_from([[0.8, 0.1, 0.1], [0.5, 0.25, 0.25], [0.6, 0.0, 0.4], [0.34, 0.33, 0.33]])
PER_USER = ("random", "leave_last", "user_holdout")


def config_for(protocol, ratios, seed, n):
    if protocol == "temporal":
        return SplitConfig(protocol="temporal", cutoffs=[4, 9], seed=seed)
    return SplitConfig(protocol=protocol, ratios=ratios, seed=seed, leave_last_n=n)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, protocol=st.sampled_from(PER_USER + ("temporal",)), ratios=ratio_strategy,
       seed=st.integers(-5, 2**40), n=st.integers(1, 2), data=st.data())
def test_every_row_in_one_split_order_and_partition_independent(rows, protocol, ratios, seed, n, data):
    frame = frame_of(rows)
    cfg = config_for(protocol, ratios, seed, n)
    out = split_frame(frame, cfg)
    assert out.drop(SPLIT).equals(frame)                        # nothing lost, duplicated or reordered
    assert set(out[SPLIT].to_list()) <= {"train", "val", "test"} and out[SPLIT].null_count() == 0
    assert split_frame(frame, cfg).equals(out)                  # deterministic
    permutation = data.draw(st.permutations(range(frame.height)))
    shuffled = frame[list(permutation)] if frame.height else frame
    assert canonical_rows(split_frame(shuffled, cfg)) == canonical_rows(out)
    others = frame_of(data.draw(other_users))
    combined = split_frame(pl.concat([others, frame]), cfg)
    mine = combined.filter(~pl.col("user_id").is_in(["x0", "x1", "x2"]))
    assert canonical_rows(mine) == canonical_rows(out)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, protocol=st.sampled_from(("random", "leave_last")), ratios=ratio_strategy,
       seed=st.integers(0, 2**63), n=st.integers(1, 2))
def test_per_user_splits_match_the_reference(rows, protocol, ratios, seed, n):
    frame = frame_of(rows)
    cfg = config_for(protocol, ratios, seed, n)
    assert split_frame(frame, cfg)[SPLIT].to_list() == reference_split(frame, cfg)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, ratios=ratio_strategy, seed=st.integers(0, 1000))
def test_random_split_proportions_per_user_within_rounding(rows, ratios, seed):
    out = split_frame(frame_of(rows), SplitConfig(protocol="random", ratios=ratios, seed=seed))
    for (user,), part in out.group_by("user_id"):
        n, got = part.height, counts(part)
        if n <= 2:
            assert got == {"train": n}
            continue
        for name, share in zip(("train", "val", "test"), ratios):
            assert abs(got.get(name, 0) - n * share) <= 1.0 + 1e-9


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, n=st.integers(1, 2), seed=st.integers(0, 1000))
def test_leave_last_puts_each_users_latest_events_in_test(rows, n, seed):
    out = split_frame(frame_of(rows), SplitConfig(protocol="leave_last", leave_last_n=n, seed=seed))
    for _, part in out.group_by("user_id"):
        if part.height < 2 * n + 1:
            assert set(part[SPLIT]) == {"train"}
            continue
        by = {s: part.filter(pl.col(SPLIT) == s)["timestamp"] for s in ("train", "val", "test")}
        assert len(by["test"]) == n and len(by["val"]) == n
        assert by["test"].max() == part["timestamp"].max()
        assert by["train"].max() <= by["val"].min() and by["val"].max() <= by["test"].min()


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy.filter(len), ratios=ratio_strategy)
def test_temporal_split_orders_time_and_cutoffs_agree_sharded(rows, ratios):
    frame = frame_of(rows)
    out = split_frame(frame, SplitConfig(protocol="temporal", ratios=ratios))
    ts = {s: out.filter(pl.col(SPLIT) == s)["timestamp"] for s in ("train", "val", "test")}
    if len(ts["train"]) and len(ts["test"]):
        assert ts["train"].max() < ts["test"].min()
    if len(ts["val"]):
        assert ts["val"].min() > (ts["train"].max() if len(ts["train"]) else -1)
    ordered = np.sort(frame["timestamp"].to_numpy())
    k1 = math.floor(len(ordered) * round(ratios[0], 12) + 0.5)
    assert len(ts["train"]) <= k1
    # cutoffs from counts summed over blocks equal the single-frame cutoffs and the brute-force definition
    blocks = [local_count_le_many(part) for part in np.array_split(frame["timestamp"].to_numpy(), 3)]
    sharded = temporal_cutoffs(lambda t: sum(b(t) for b in blocks), int(ordered[0]), int(ordered[-1]),
                               len(ordered), ratios)
    expected = [int(ordered[k]) if k < len(ordered) else int(ordered[-1]) + 1
                for k in (k1, math.floor(len(ordered) * round(ratios[0] + ratios[1], 12) + 0.5))]
    assert sharded == frame_cutoffs(frame, ratios) == expected


@settings(max_examples=40, deadline=None)
@given(rows=rows_strategy, ratios=ratio_strategy, seed=st.integers(0, 1000))
def test_user_holdout_user_sets_are_disjoint(rows, ratios, seed):
    out = split_frame(frame_of(rows), SplitConfig(protocol="user_holdout", ratios=ratios, seed=seed))
    users = {s: set(out.filter(pl.col(SPLIT) == s)["user_id"]) for s in ("train", "val", "test")}
    assert not (users["train"] & users["val"]) and not (users["train"] & users["test"])
    assert not (users["val"] & users["test"])
