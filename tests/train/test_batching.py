"""Epoch examples and per-worker batches: coverage, order, and the worker split."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.train.batching import (epoch_examples, epoch_order, examples_per_batch, steps_per_epoch, window_examples,
                                   worker_batches)


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(0, 12), min_size=1, max_size=8), window=st.integers(2, 6))
def test_windows_make_every_item_but_each_users_first_a_target_once(lengths, window):
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    users, ends, n_targets = window_examples(indptr, window)
    targets = []
    for u, end, n in zip(users, ends, n_targets):
        start = max(indptr[u], end - window)
        assert n == min(window - 1, end - indptr[u] - 1) >= 1
        targets += list(range(start + 1, end))          # positions predicted by this window
        assert end - start <= window
    expected = [p for u in range(len(lengths)) for p in range(indptr[u] + 1, indptr[u + 1])]
    assert sorted(targets) == expected


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), per_batch=st.integers(1, 9), world=st.integers(1, 3), seed=st.integers(0, 99))
def test_workers_split_each_global_batch_and_take_the_same_number_of_steps(n, per_batch, world, seed):
    examples = epoch_examples(np.array([0, n]), "pairs")
    order = epoch_order(n, seed, 0)
    per_worker = [list(worker_batches(examples, order, per_batch, rank, world)) for rank in range(world)]
    assert len({len(batches) for batches in per_worker}) == 1
    assert len(per_worker[0]) == steps_per_epoch(n, per_batch, world)
    for step in range(len(per_worker[0])):
        union = sorted(p for batches in per_worker for p in batches[step][0].positions.tolist())
        chosen = order[step * per_batch:(step + 1) * per_batch]
        assert union == sorted(chosen.tolist())
        assert all(batches[step][1] == len(chosen) for batches in per_worker)


def test_order_depends_on_seed_and_epoch_only():
    assert (epoch_order(50, 3, 1) == epoch_order(50, 3, 1)).all()
    assert not (epoch_order(50, 3, 1) == epoch_order(50, 3, 2)).all()
    assert not (epoch_order(50, 3, 1) == epoch_order(50, 4, 1)).all()


def test_window_batches_count_targets():
    assert examples_per_batch("windows", 100, 11) == 10
    assert examples_per_batch("windows", 3, 11) == 1
