"""Outcome rules on hand-built metrics and comparisons."""

from __future__ import annotations

import polars as pl
import pytest

from recsys.diagnose.config import DiagnoseConfig
from recsys.diagnose.inputs import DiagnosisInputs
from recsys.diagnose.outcomes import not_beating_popularity, popularity_bias, segment_weakness
from tests.diagnose.builders import comparison, healthy_comparisons, healthy_metrics, metric

CFG = DiagnoseConfig()


def run(rule, metrics=None, comparisons=None) -> list:
    m = pl.DataFrame(metrics) if isinstance(metrics, list) else metrics
    c = pl.DataFrame(comparisons) if isinstance(comparisons, list) else comparisons
    return rule(DiagnosisInputs(metrics=m, comparisons=c).prepared(), CFG)


@pytest.mark.parametrize("rule", [popularity_bias, segment_weakness, not_beating_popularity])
def test_healthy_outcomes_trigger_nothing(rule):
    assert run(rule, healthy_metrics(), healthy_comparisons()) == []


def popularity_rows(arp: float, coverage: float) -> list[dict]:
    return [metric("pop", "popularity", 400.0), metric("pop", "test_popularity", 100.0, k=None),
            metric("pop", "coverage", 0.03), metric("mf", "popularity", arp),
            metric("mf", "test_popularity", 100.0, k=None), metric("mf", "coverage", coverage)]


@pytest.mark.parametrize(("arp", "coverage", "severity"), [
    (300.0, 0.4, "warning"), (600.0, 0.4, "critical"), (150.0, 0.05, "warning"), (300.0, 0.05, "critical")])
def test_recommending_far_more_popular_items_than_users_consume_is_popularity_bias(arp, coverage, severity):
    [f] = run(popularity_bias, popularity_rows(arp, coverage))
    assert (f.code, f.severity, f.where) == ("POPULARITY_BIAS", severity,
                                             {"model": "mf", "table": "metrics", "split": "val"})
    assert f.evidence["popularity_ratio"] == pytest.approx(arp / 100.0)
    assert (f.evidence["coverage"], f.evidence["baseline_coverage"]) == (coverage, 0.03)


@pytest.mark.parametrize(("coverage", "low"), [(0.515, False), (0.465, False), (0.345, False), (0.195, True),
                                             (0.150, True)])
def test_coverage_is_low_only_near_the_popularity_models(coverage, low):
    # measured on synthetic data (pop covers 0.15): healthy mf 0.515 and two_tower 0.465, a two_tower
    # leaning on text 0.345 (recommended popularity 1.3x the held-out items', as healthy); a model
    # trained on popularity-only users 0.195 (1.3x pop's), one that collapsed to popularity 0.150
    rows = [metric("pop", "coverage", 0.15), metric("mf", "popularity", 55.0),
            metric("mf", "test_popularity", 42.0, k=None), metric("mf", "coverage", coverage)]
    found = run(popularity_bias, rows)
    assert [f.code for f in found] == (["POPULARITY_BIAS"] if low else [])


def test_the_popularity_model_itself_is_not_judged():
    assert [f.model for f in run(popularity_bias, popularity_rows(150.0, 0.4))] == []


@pytest.mark.parametrize(("value", "severity"), [(0.05, "warning"), (0.03, "critical")])
def test_a_segment_far_below_the_average_is_weak(value, severity):
    rows = [metric("mf", "ndcg", 0.12), metric("mf", "ndcg", value, segment="cold_users",
                                               ci=(value - 0.01, value + 0.01), n_users=40)]
    [f] = run(segment_weakness, rows)
    assert (f.code, f.severity, f.where["segment"]) == ("SEGMENT_WEAKNESS", severity, "cold_users")
    assert f.evidence["rel_gap"] == pytest.approx((0.12 - value) / 0.12)
    assert f.evidence["significant"] is True
    assert f.remedy.edit_dicts() == [{"param": "model.mf.use_text", "op": "enable"}]


def test_a_weak_segment_must_be_significant_and_large_enough():
    overlapping = metric("mf", "ndcg", 0.05, segment="tail", ci=(0.0, 0.13), n_users=40)
    tiny = metric("mf", "ndcg", 0.05, segment="tail", ci=(0.04, 0.06), n_users=5)
    for seg in (overlapping, tiny):
        assert run(segment_weakness, [metric("mf", "ndcg", 0.12), seg]) == []
    no_interval = metric("mf", "ndcg", 0.05, segment="tail", n_users=40)
    [f] = run(segment_weakness, [metric("mf", "ndcg", 0.12), no_interval])
    assert f.evidence["significant"] is None


@pytest.mark.parametrize("group", ["items_tail", "items_torso", "cold_items", "item_genres=space"])
def test_item_groups_are_not_user_segments_and_are_not_judged(group):
    # an item group re-evaluates each list against the held-out items in the group only: far below
    # `all` for every model (measured on synthetic data: items_tail 0.012 against 0.32 overall)
    rows = [metric("mf", "ndcg", 0.32), metric("mf", "ndcg", 0.012, segment=group, ci=(0.0, 0.03), n_users=80),
            metric("mf", "ndcg", 0.05, segment="activity_q1", ci=(0.03, 0.07), n_users=80)]
    [f] = run(segment_weakness, rows)
    assert f.where["segment"] == "activity_q1"


def test_a_segment_as_hard_for_popularity_is_not_a_weakness_of_the_model():
    # measured on synthetic data: activity_q3 is 32% below mf's overall value and 33% below pop's
    segment = metric("mf", "ndcg", 0.182, segment="activity_q3", ci=(0.119, 0.244), n_users=50)
    rows = [metric("mf", "ndcg", 0.266), segment, metric("pop", "ndcg", 0.200)]
    as_hard = metric("pop", "ndcg", 0.134, segment="activity_q3", ci=(0.080, 0.200), n_users=50)
    assert run(segment_weakness, rows + [as_hard]) == []
    easier = metric("pop", "ndcg", 0.180, segment="activity_q3", ci=(0.12, 0.24), n_users=50)
    [f] = run(segment_weakness, rows + [easier])
    assert f.evidence["baseline_rel_gap"] == pytest.approx(0.1)
    assert f.evidence["rel_gap"] == pytest.approx((0.266 - 0.182) / 0.266)
    [f] = run(segment_weakness, rows)                   # the baseline has no such segment: judged alone
    assert f.evidence["baseline_rel_gap"] is None


@pytest.mark.parametrize(("delta", "p", "severity"), [(-0.02, 0.001, "critical"), (0.01, 0.3, "warning"),
                                                      (-0.01, 0.4, "warning")])
def test_a_model_not_significantly_better_than_popularity(delta, p, severity):
    [f] = run(not_beating_popularity, comparisons=[comparison("mf", delta, p)])
    assert (f.code, f.severity, f.where) == ("NOT_BEATING_POPULARITY", severity,
                                             {"model": "mf", "table": "comparisons", "split": "val"})
    assert (f.evidence["delta"], f.evidence["p_value"]) == (delta, p)


def test_comparisons_in_either_orientation_are_read_as_model_minus_popularity():
    [f] = run(not_beating_popularity, comparisons=[comparison("pop", 0.02, 0.001, baseline="mf")])
    assert f.severity == "critical" and f.evidence["delta"] == -0.02


def test_without_comparisons_the_metrics_decide_without_significance():
    rows = [metric("pop", "ndcg", 0.10), metric("mf", "ndcg", 0.08), metric("two_tower", "ndcg", 0.2)]
    [f] = run(not_beating_popularity, metrics=rows)
    assert (f.model, f.severity, f.evidence["source"], f.evidence["p_value"]) == ("mf", "warning", "metrics", None)
    assert f.evidence["delta"] == pytest.approx(-0.02)


def test_a_comparison_takes_precedence_over_the_metrics():
    rows = [metric("pop", "ndcg", 0.10), metric("mf", "ndcg", 0.08)]
    assert run(not_beating_popularity, rows, [comparison("mf", 0.05, 1e-4)]) == []
