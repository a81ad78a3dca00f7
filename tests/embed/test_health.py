"""Embedding health statistics: hand-computed cases, brute-force references, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from recsys.embed.health import duplicate_rows, effective_rank, embedding_health, isotropy, mean_cosine


def test_hand_computed_orthonormal_pair():
    row = embedding_health(np.eye(2, dtype=np.float32))
    assert row["n_rows"] == 2 and row["dim"] == 2
    assert row["effective_rank"] == pytest.approx(2.0)
    assert (row["norm_mean"], row["norm_std"], row["norm_min"], row["norm_max"]) == (1.0, 0.0, 1.0, 1.0)
    assert row["mean_cosine"] == pytest.approx(0.0)
    # directions ±e1, ±e2: Z(e1) = e + 1, Z(-e1) = 1/e + 1  ->  min/max = (1 + 1/e) / (1 + e) = 1/e
    assert row["isotropy"] == pytest.approx(math.exp(-1.0))
    assert row["dead_rows"] == 0 and row["details"]["duplicate_vectors"] == 0


def test_hand_computed_symmetric_cross_is_isotropic():
    cross = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], dtype=np.float32)
    assert isotropy(cross) == pytest.approx(1.0)
    assert mean_cosine(cross) == pytest.approx(-1 / 3)      # pairs: 2 at -1, 4 at 0 (of 6)
    assert effective_rank(cross) == pytest.approx(2.0)


def test_hand_computed_collapsed_vectors():
    same = np.array([[1.0, 0.0], [1.0, 0.0]])
    # Z(e1) = 2e, Z(-e1) = 2/e, Z(±e2) = 2  ->  (2/e) / (2e) = e^-2
    assert isotropy(same) == pytest.approx(math.exp(-2.0))
    assert effective_rank(same) == pytest.approx(1.0)
    assert mean_cosine(same) == pytest.approx(1.0)
    assert duplicate_rows(same) == 1


def test_hand_computed_norms_and_dead_rows():
    row = embedding_health(np.array([[3.0, 4.0], [0.0, 0.0], [0.0, 1e-8]]))
    assert row["norm_max"] == pytest.approx(5.0) and row["norm_min"] == 0.0
    assert row["dead_rows"] == 2
    assert row["mean_cosine"] == pytest.approx(0.8)           # only the two non-zero rows: cos = 4/5


def test_effective_rank_of_two_unequal_singular_values():
    # singular values 3 and 1 -> p = (3/4, 1/4), H = -(3/4 ln 3/4 + 1/4 ln 1/4)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert effective_rank(np.diag([3.0, 1.0])) == pytest.approx(math.exp(h))


def test_empty_matrix():
    row = embedding_health(np.zeros((0, 4)))
    assert row["n_rows"] == 0 and row["effective_rank"] is None and row["isotropy"] is None


def test_sampling_keeps_rank_and_isotropy_close_on_large_inputs():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6000, 16)).astype(np.float32)
    full, sampled = embedding_health(vectors, sample=10_000), embedding_health(vectors, sample=2000)
    assert sampled["details"]["sample_size"] == 2000
    assert sampled["effective_rank"] == pytest.approx(full["effective_rank"], rel=0.02)
    assert sampled["norm_mean"] == full["norm_mean"]           # norms always use every row


matrices = arrays(np.float64, st.tuples(st.integers(2, 12), st.integers(1, 6)),
                  elements=st.floats(-10, 10, allow_nan=False, width=32))


@settings(max_examples=150, deadline=None)
@given(matrices)
def test_mean_cosine_equals_brute_force(vectors):
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors[norms > 0] / norms[norms > 0, None]
    n = len(unit)
    got = mean_cosine(vectors)
    if n < 2:
        assert got is None
        return
    pairs = [unit[i] @ unit[j] for i in range(n) for j in range(n) if i != j]
    assert got == pytest.approx(float(np.mean(pairs)), abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(matrices)
def test_rank_and_isotropy_stay_in_range(vectors):
    rank = effective_rank(vectors)
    assert rank == 0.0 or 1.0 - 1e-9 <= rank <= min(vectors.shape) + 1e-9
    iso = isotropy(vectors)
    assert 0.0 <= iso <= 1.0 + 1e-12


@settings(max_examples=60, deadline=None)
@given(matrices, st.integers(0, 10_000))
def test_rank_and_isotropy_do_not_change_under_rotation(vectors, seed):
    eigenvalues = np.linalg.eigvalsh(vectors.T @ vectors)
    assume(np.all(np.diff(eigenvalues) > 1e-3 * (1 + eigenvalues.max())))   # principal directions unique
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(vectors.shape[1],) * 2))
    assert effective_rank(vectors @ q) == pytest.approx(effective_rank(vectors), rel=1e-6, abs=1e-9)
    assert isotropy(vectors @ q) == pytest.approx(isotropy(vectors), rel=1e-6, abs=1e-12)
