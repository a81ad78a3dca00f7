"""Top-k kernel: masking, deterministic ties, ranks, batching from the memory budget, memory flat in users."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.errors import ConfigError, DataError
from recsys.evaluate.topk import batch_size_for, factor_scorer, iter_topk, topk
from recsys.evaluate.useritems import UserItems

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def _table_scorer(scores: np.ndarray):
    table = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32))
    return lambda users: table[users]


def _reference_topk(scores: np.ndarray, seen: UserItems, k: int) -> np.ndarray:
    """Per-user loop: sort unseen items by (-score, item index)."""
    out = np.full((scores.shape[0], k), -1)
    for user in range(scores.shape[0]):
        candidates = np.setdiff1d(np.arange(scores.shape[1]), seen.row(user))
        order = np.lexsort((candidates, -scores[user, candidates].astype(np.float64)))
        ranked = candidates[order][:k]
        out[user, :len(ranked)] = ranked
    return out


@st.composite
def score_cases(draw):
    n_users, n_items = draw(st.integers(1, 6)), draw(st.integers(1, 15))
    values = draw(st.lists(st.integers(-2, 2), min_size=n_users * n_items, max_size=n_users * n_items))
    scores = np.array(values, dtype=np.float32).reshape(n_users, n_items)       # small range: many ties
    pairs = draw(st.lists(st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1)),
                          max_size=n_users * n_items))
    seen = UserItems.from_pairs(np.array([u for u, _ in pairs], dtype=np.int64),
                                np.array([i for _, i in pairs], dtype=np.int64), n_users=n_users, n_items=n_items)
    return scores, seen, draw(st.integers(1, 8)), draw(st.integers(1, 4))


@settings(max_examples=80, deadline=None)
@given(score_cases())
def test_matches_a_per_user_sort_with_ties_by_item_index(case):
    scores, seen, k, batch = case
    result = topk(_table_scorer(scores), np.arange(scores.shape[0]), k, seen=seen,
                  memory_budget_bytes=batch * scores.shape[1] * 4)
    assert np.array_equal(result.items, _reference_topk(scores, seen, k))
    for user in range(scores.shape[0]):                         # masking: a seen item never appears
        assert not np.isin(result.items[user], seen.row(user)).any()
    listed = result.items >= 0
    assert np.array_equal(result.scores[listed], scores[np.nonzero(listed)[0], result.items[listed]])
    assert np.all(np.isneginf(result.scores[~listed]))


@settings(max_examples=60, deadline=None)
@given(score_cases())
def test_ranks_agree_with_the_lists_and_count_above_and_tied(case):
    scores, seen, k, batch = case
    n_users, n_items = scores.shape
    relevant = UserItems.from_pairs(np.repeat(np.arange(n_users), n_items), np.tile(np.arange(n_items), n_users),
                                    n_users=n_users, n_items=n_items)              # every item held out
    result = topk(_table_scorer(scores), np.arange(n_users), n_items, seen=seen, relevant=relevant,
                  with_ranks=True, memory_budget_bytes=batch * n_items * 4)
    r = result.ranks
    for row, item, rank, above, tied in zip(r.row, r.item, r.rank, r.n_above, r.n_tied):
        user = result.users[row]
        if item in seen.row(user):
            assert rank == above == tied == -1
            continue
        candidates = np.setdiff1d(np.arange(n_items), seen.row(user))
        others = candidates[candidates != item]
        assert above == np.sum(scores[user, others] > scores[user, item])
        assert tied == np.sum(scores[user, others] == scores[user, item])
        assert result.items[row, rank - 1] == item                     # rank = position in the full list


def test_results_do_not_depend_on_the_batch_a_user_falls_in():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(50, 40)).astype(np.float32)
    seen = UserItems.from_pairs(rng.integers(0, 50, 200), rng.integers(0, 40, 200), n_users=50, n_items=40)
    runs = [topk(_table_scorer(scores), np.arange(50), 7, seen=seen, memory_budget_bytes=b * 160)
            for b in (1, 3, 50)]
    for other in runs[1:]:
        assert np.array_equal(runs[0].items, other.items)


def test_short_lists_are_padded_and_k_above_the_catalogue_is_allowed():
    seen = UserItems.from_pairs([0, 0], [0, 2], n_users=1, n_items=3)
    result = topk(factor_scorer(torch.ones(1, 1), torch.tensor([[3.0], [2.0], [1.0]])), [0], 5, seen=seen)
    assert result.items.tolist() == [[1, -1, -1, -1, -1]]
    assert result.n_candidates.tolist() == [1]


def test_minus_infinity_from_the_model_stays_a_candidate_below_finite_scores():
    scores = np.array([[-np.inf, 1.0, -np.inf, 0.0]], dtype=np.float32)
    seen = UserItems.from_pairs([0], [1], n_users=1, n_items=4)
    assert topk(_table_scorer(scores), [0], 4, seen=seen).items.tolist() == [[3, 0, 2, -1]]


def test_minus_infinity_candidates_get_ranks_not_the_masked_marker():
    scores = np.array([[2.0, -np.inf, 1.0, -np.inf, 0.5, 0.3]], dtype=np.float32)
    seen = UserItems.from_pairs([0], [0], n_users=1, n_items=6)
    relevant = UserItems.from_pairs([0, 0], [1, 3], n_users=1, n_items=6)
    for k, listed in ((1, [[2]]), (5, [[2, 4, 5, 1, 3]])):       # -inf items outside / inside the list
        result = topk(_table_scorer(scores), [0], k, seen=seen, relevant=relevant, with_ranks=True)
        assert result.items.tolist() == listed
        assert result.ranks.rank.tolist() == [4, 5]
        assert result.ranks.n_above.tolist() == [3, 3] and result.ranks.n_tied.tolist() == [1, 1]


def test_nan_scores_are_an_error_naming_the_users():
    scores = np.zeros((3, 4), dtype=np.float32)
    scores[2, 1] = np.nan
    with pytest.raises(DataError, match=r"NaN or \+inf for 1 users, e.g. user_idx \[2\]"):
        topk(_table_scorer(scores), [0, 1, 2], 2, n_items=4)


def test_a_scorer_returning_a_view_of_stored_scores_is_not_modified():
    stored = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    before = stored.clone()
    seen = UserItems.from_pairs([0, 1, 2], [3, 3, 3], n_users=3, n_items=4)
    topk(lambda users: stored[int(users[0]):int(users[-1]) + 1], [0, 1, 2], 2, seen=seen)
    assert torch.equal(stored, before)


def test_wrong_shapes_and_settings_are_named():
    with pytest.raises(DataError, match=r"returned \(2, 3\) for 2 users, expected \(2, 4\)"):
        topk(lambda users: torch.zeros(len(users), 3), [0, 1], 1, n_items=4)
    with pytest.raises(ConfigError, match="eval.memory_budget_mb"):
        batch_size_for(1000, 100)
    with pytest.raises(ConfigError, match="eval.k"):
        topk(lambda users: torch.zeros(len(users), 3), [0], 0, n_items=3)
    with pytest.raises(DataError, match="user indices"):
        topk(lambda users: torch.zeros(len(users), 3), [5], 1, seen=UserItems.empty(2, 3))


def test_batches_never_exceed_the_budget_and_do_not_grow_with_users():
    shapes = []
    user_factors, item_factors = torch.randn(5000, 8), torch.randn(300, 8)
    base = factor_scorer(user_factors, item_factors)

    def recording(users):
        block = base(users)
        shapes.append(tuple(block.shape))
        return block

    budget = 64 * 1024
    for n_users in (500, 5000):
        shapes.clear()
        for _ in iter_topk(recording, np.arange(n_users), 10, n_items=300, memory_budget_bytes=budget):
            pass
        assert max(rows * cols * 4 for rows, cols in shapes) <= budget
        assert shapes[0] == (budget // (300 * 4), 300)


def _traced_peak(n_users: int, n_items: int = 1000) -> int:
    rng = np.random.default_rng(1)
    seen = UserItems.from_pairs(rng.integers(0, n_users, 5 * n_users), rng.integers(0, n_items, 5 * n_users),
                                n_users=n_users, n_items=n_items)
    relevant = UserItems.from_pairs(rng.integers(0, n_users, 2 * n_users), rng.integers(0, n_items, 2 * n_users),
                                    n_users=n_users, n_items=n_items).difference(seen)
    score = factor_scorer(torch.randn(n_users, 16), torch.randn(n_items, 16))
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    for batch in iter_topk(score, np.arange(n_users), 10, seen=seen, relevant=relevant, with_ranks=True,
                           memory_budget_bytes=2_000_000):
        del batch
    peak = tracemalloc.get_traced_memory()[1] - baseline
    tracemalloc.stop()
    return peak


def test_numpy_working_memory_is_flat_in_users():
    # NumPy allocations of the loop (tracemalloc sees them; torch's are checked below by resident memory).
    # The user index array grows by 8 bytes a user; anything per user x item would add >= 1000 bytes a user.
    small, large = _traced_peak(1_000), _traced_peak(12_000)
    assert (large - small) / 11_000 < 16, (small, large)


MEMORY_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import numpy as np, torch
    from recsys.evaluate.topk import factor_scorer, iter_topk
    from recsys.evaluate.useritems import UserItems
    torch.set_num_threads(1)
    n_items, out = 5_000, {}
    for n_users in (2_000, 40_000):
        rng = np.random.default_rng(0)
        seen = UserItems.from_pairs(rng.integers(0, n_users, 10 * n_users), rng.integers(0, n_items, 10 * n_users),
                                    n_users=n_users, n_items=n_items)
        score = factor_scorer(torch.randn(n_users, 16), torch.randn(n_items, 16))
        for batch in iter_topk(score, np.arange(n_users), 20, seen=seen, memory_budget_bytes=2 * 2**20):
            pass
        out[n_users] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))
""")


def test_peak_resident_memory_is_flat_in_users():
    # 40k users x 5k items as float32 would be 800 MB; the streamed loop must stay within a few MB of 2k users.
    done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    peaks = {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}
    assert peaks[40_000] - peaks[2_000] < 40, peaks          # MiB: inputs grow ~10 MiB, a block is 2 MiB


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 9)), max_size=40),
       st.lists(st.tuples(st.integers(0, 4), st.integers(0, 9)), max_size=40))
def test_item_set_operations_agree_with_python_sets(a_pairs, b_pairs):
    def build(pairs):
        return UserItems.from_pairs(np.array([u for u, _ in pairs], dtype=np.int64),
                                    np.array([i for _, i in pairs], dtype=np.int64), n_users=5, n_items=10)

    a, b = build(a_pairs), build(b_pairs)
    as_set = lambda sets: {(u, int(i)) for u in range(sets.n_users) for i in sets.row(u)}  # noqa: E731
    assert as_set(a.union(b)) == set(a_pairs) | set(b_pairs)
    assert as_set(a.difference(b)) == set(a_pairs) - set(b_pairs)
    assert as_set(a.restrict([1, 3])) == {(u, i) for u, i in a_pairs if u in (1, 3)}
    queries = [(u, i) for u in range(5) for i in range(10)]
    found = a.has(np.array([u for u, _ in queries]), np.array([i for _, i in queries]))
    assert [q for q, f in zip(queries, found) if f] == sorted(set(a_pairs))
    matrix = a.contains(np.arange(5), np.tile(np.arange(10), (5, 1)))
    assert {(u, i) for u, i in zip(*np.nonzero(matrix))} == set(a_pairs)
