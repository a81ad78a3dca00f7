"""Paired tests against scipy, corrections by hand and against scipy, model comparisons."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from recsys.errors import ConfigError, DataError
from recsys.evaluate.rows import MetricRows
from recsys.evaluate.significance import adjust_p_values, compare_models, paired_test


@st.composite
def paired_values(draw, max_size=80):
    n = draw(st.integers(2, max_size))
    grid = st.sampled_from([0.0, 0.1, 0.2, 0.25, 0.5, 1.0])          # coarse values: ties and zeros, as in metrics
    fine = st.floats(0, 1, allow_nan=False)
    values = st.one_of(grid, fine) if draw(st.booleans()) else grid
    baseline = np.array(draw(st.lists(values, min_size=n, max_size=n)))
    candidate = np.array(draw(st.lists(values, min_size=n, max_size=n)))
    return baseline, candidate


@settings(max_examples=80, deadline=None)
@given(paired_values())
def test_paired_t_matches_scipy_ttest_rel(pair):
    baseline, candidate = pair
    ours = paired_test(baseline, candidate, "paired_t")
    reference = stats.ttest_rel(candidate, baseline)
    if np.isnan(reference.pvalue):
        assert np.isnan(ours.p_value)
        return
    assert ours.p_value == pytest.approx(reference.pvalue, rel=1e-6, abs=1e-12)
    if np.isfinite(reference.statistic):
        assert ours.statistic == pytest.approx(reference.statistic, rel=1e-6)
        interval = reference.confidence_interval(0.95)
        assert (ours.ci_low, ours.ci_high) == pytest.approx((interval.low, interval.high), rel=1e-6, abs=1e-12)


@settings(max_examples=120, deadline=None)
@given(paired_values())
def test_wilcoxon_matches_scipy(pair):
    baseline, candidate = pair
    ours = paired_test(baseline, candidate, "wilcoxon")
    if np.all(candidate == baseline):
        assert np.isnan(ours.p_value)
        return
    reference = stats.wilcoxon(candidate, baseline)
    assert ours.statistic == pytest.approx(reference.statistic)
    assert ours.p_value == pytest.approx(reference.pvalue, rel=1e-6, abs=1e-12)


def test_wilcoxon_exact_and_approximate_regimes_by_hand():
    # 5 differences, no ties: exact. W+ = 1 + 2 + 4 + 5 = 12, W- = 3. P(W- <= 3) counts the sign patterns
    # whose negative ranks sum to <= 3: {}, {1}, {2}, {3}, {1, 2} -> 5 / 32, two-sided p = 10 / 32
    result = paired_test(np.zeros(5), np.array([0.1, 0.2, -0.3, 0.4, 0.5]), "wilcoxon")
    assert result.statistic == 3.0 and result.p_value == pytest.approx(10 / 32)
    # 60 differences with ties: normal approximation with tie correction
    d = np.repeat([0.1, -0.2, 0.3], 20)
    result = paired_test(np.zeros(60), d, "wilcoxon")
    assert result.p_value == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-9)


def test_bootstrap_test_is_seeded_and_sensible():
    rng = np.random.default_rng(0)
    baseline = rng.random(300)
    better = baseline + 0.05 + rng.normal(0, 0.05, 300)
    same = baseline + rng.normal(0, 0.05, 300)
    strong = paired_test(baseline, better, "bootstrap", n_samples=999, seed=1)
    assert strong.p_value == pytest.approx(1 / 1000)              # no centred resample reaches 0.05
    assert strong.ci_low < strong.delta < strong.ci_high and strong.ci_low > 0
    weak = paired_test(baseline, same, "bootstrap", n_samples=999, seed=1)
    assert weak.p_value > 0.05 and weak.ci_low < 0 < weak.ci_high
    assert paired_test(baseline, same, "bootstrap", seed=1) == paired_test(baseline, same, "bootstrap", seed=1)
    # the bootstrap p-value agrees with the t-test's on well-behaved data
    t_p = paired_test(baseline, same, "paired_t").p_value
    assert abs(weak.p_value - t_p) < 0.1


def test_nan_pairs_are_dropped():
    result = paired_test([0.1, np.nan, 0.3, 0.2], [0.2, 0.5, np.nan, 0.4], "paired_t")
    assert result.n == 2 and result.delta == pytest.approx(0.15)


def test_holm_and_benjamini_hochberg_by_hand():
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    # Holm: ascending 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max
    holm = adjust_p_values(p, "holm")
    assert holm[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and math.isnan(holm[4])
    # BH: 0.005*4/1, 0.01*4/2, 0.03*4/3, 0.04*4/4 = 0.02, 0.02, 0.04, 0.04 -> running min from the top
    bh = adjust_p_values(p, "benjamini_hochberg")
    assert bh[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_p_values(p, "none")[:4].tolist() == p[:4]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_benjamini_hochberg_matches_scipy_and_holm_is_no_smaller(p):
    bh = adjust_p_values(p, "benjamini_hochberg")
    np.testing.assert_allclose(bh, stats.false_discovery_control(p, method="bh"), rtol=1e-12)
    holm = adjust_p_values(p, "holm")
    assert np.all(holm >= bh - 1e-15) and np.all(holm >= np.asarray(p) - 1e-15) and np.all(holm <= 1)


def _rows(users, values):
    n = len(users)
    return MetricRows(np.asarray(users), np.ones(n, np.int64), np.zeros(n, np.int64),
                      {name: np.asarray(v, dtype=float) for name, v in values.items()},
                      np.zeros((n, 1), np.int32), np.zeros((n, 1), np.float32), n_items=10)


def test_compare_models_pairs_users_and_corrects_across_the_family():
    rng = np.random.default_rng(2)
    base = rng.random(200)
    models = {
        "pop": _rows(np.arange(200), {"ndcg@10": base, "auc": base}),
        "mf": _rows(np.arange(200)[::-1], {"ndcg@10": (base + 0.1)[::-1], "auc": (base + 0.1)[::-1]}),
        "two_tower": _rows(np.arange(50, 250), {"ndcg@10": np.r_[base[50:], np.zeros(50)], "auc": np.ones(200)}),
    }
    out = compare_models(models, baseline="pop", test="paired_t", correction="holm")
    assert [(r["candidate"], r["metric"], r["k"]) for r in out] == [
        ("mf", "ndcg", 10), ("mf", "auc", None), ("two_tower", "ndcg", 10), ("two_tower", "auc", None)]
    mf = out[0]
    assert mf["delta"] == pytest.approx(0.1) and mf["n_users"] == 200     # aligned by user, not by position
    tt = out[2]
    assert tt["n_users"] == 150 and tt["delta"] == pytest.approx(0.0)     # only shared users are paired
    raw = [r["p_value"] for r in out]
    assert [r["p_adjusted"] for r in out] == pytest.approx(adjust_p_values(raw, "holm").tolist(), nan_ok=True)
    every_pair = compare_models(models, test="wilcoxon", correction="benjamini_hochberg")
    assert {(r["baseline"], r["candidate"]) for r in every_pair} == {("pop", "mf"), ("pop", "two_tower"),
                                                                       ("mf", "two_tower")}


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="eval.significance_test"):
        paired_test([1, 2], [2, 3], "t-test")
    with pytest.raises(ConfigError, match="eval.correction"):
        adjust_p_values([0.1], "bonferroni")
    with pytest.raises(DataError, match="differ in length"):
        paired_test([1, 2], [2], "paired_t")
    with pytest.raises(ConfigError, match="baseline"):
        compare_models({"a": _rows([0], {"auc": [1.0]})}, baseline="b")
