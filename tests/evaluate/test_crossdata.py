"""Ranks and plain-language lines from hand-built metrics and comparisons rows."""

from __future__ import annotations

import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.errors import ConfigError, DataError
from recsys.evaluate.crossdata import (CompareConfig, check_compare_config, compare_run, insight_lines,
                                       rank_models)


def metric_rows(rows: list[tuple], metric: str = "ndcg", k: int | None = 10, split: str = "test",
                protocol: str = "full") -> pl.DataFrame:
    """``(dataset, model, segment, value, ci_low, ci_high)`` tuples as ``metrics`` rows."""
    return pl.DataFrame(
        [{"dataset": d, "model": m, "split": split, "protocol": protocol, "segment": s, "metric": metric, "k": k,
          "value": v, "ci_low": lo, "ci_high": hi, "n_users": 100} for d, m, s, v, lo, hi in rows],
        schema={"dataset": pl.String, "model": pl.String, "split": pl.String, "protocol": pl.String,
                "segment": pl.String,
                "metric": pl.String, "k": pl.Int32, "value": pl.Float64, "ci_low": pl.Float64,
                "ci_high": pl.Float64, "n_users": pl.Int64})


def comparison_rows(rows: list[tuple], metric: str = "ndcg", k: int | None = 10, split: str = "test",
                    protocol: str = "full") -> pl.DataFrame:
    """``(dataset, baseline, candidate, segment, delta, p_adjusted)`` tuples as ``comparisons`` rows."""
    return pl.DataFrame(
        [{"dataset": d, "split": split, "protocol": protocol, "segment": s, "baseline": b, "candidate": c,
          "metric": metric, "k": k, "delta": delta, "p_value": p, "p_adjusted": p, "test": "paired_t"}
         for d, b, c, s, delta, p in rows],
        schema={"dataset": pl.String, "split": pl.String, "protocol": pl.String, "segment": pl.String,
                "baseline": pl.String,
                "candidate": pl.String, "metric": pl.String, "k": pl.Int32, "delta": pl.Float64,
                "p_value": pl.Float64, "p_adjusted": pl.Float64, "test": pl.String})


NO_COMPARISONS = comparison_rows([])


# ---------------------------------------------------------------- ranks


def test_ranks_by_hand_with_ties_nulls_and_groups():
    metrics = metric_rows([
        ("d", "a", "all", 0.30, 0.2, 0.4), ("d", "b", "all", 0.30, 0.2, 0.4), ("d", "c", "all", 0.10, 0.0, 0.2),
        ("d", "e", "all", None, None, None), ("d", "f", "all", float("nan"), None, None),
        ("d", "a", "cold_start_users", 0.05, 0.0, 0.1), ("d", "c", "cold_start_users", 0.07, 0.0, 0.1),
        ("x", "a", "all", 0.01, 0.0, 0.02),
    ])
    ranked = rank_models(metrics)
    got = {(r["dataset"], r["segment"], r["model"]): (r["rank"], r["n_models"]) for r in ranked.iter_rows(named=True)}
    assert got == {
        ("d", "all", "a"): (1, 3), ("d", "all", "b"): (1, 3), ("d", "all", "c"): (3, 3),   # competition ranking
        ("d", "all", "e"): (None, 3), ("d", "all", "f"): (None, 3),                       # no value, no rank
        ("d", "cold_start_users", "c"): (1, 2), ("d", "cold_start_users", "a"): (2, 2),
        ("x", "all", "a"): (1, 1),
    }
    assert ranked.filter(pl.col("model") == "f")["value"].to_list() == [None]          # NaN becomes null
    assert ranked.columns == ["dataset", "split", "protocol", "segment", "metric", "k", "model", "value", "ci_low",
                              "ci_high", "rank", "n_models"]
    assert ranked.row(0, named=True)["ci_low"] == 0.2


def test_lower_is_better_metrics_rank_the_smallest_first_and_metrics_without_k_rank_too():
    gini = metric_rows([("d", "a", "all", 0.9, None, None), ("d", "b", "all", 0.4, None, None)], metric="gini")
    auc = metric_rows([("d", "a", "all", 0.6, None, None), ("d", "b", "all", 0.8, None, None)], metric="auc", k=None)
    ranked = rank_models(pl.concat([gini, auc]))
    assert ranked.filter(pl.col("metric") == "gini").select("model", "rank").rows() == [("b", 1), ("a", 2)]
    assert ranked.filter(pl.col("metric") == "auc").select("model", "rank", "k").rows() == [("b", 1, None),
                                                                                           ("a", 2, None)]


def test_each_protocol_is_ranked_and_described_on_its_own_and_rows_without_protocol_still_work():
    full = metric_rows([("d", "a", "all", 0.3, None, None), ("d", "b", "all", 0.1, None, None)])
    sampled = metric_rows([("d", "a", "all", 0.5, None, None), ("d", "b", "all", 0.7, None, None)], protocol="uni100")
    ranked = rank_models(pl.concat([full, sampled]))
    assert ranked.select("protocol", "model", "rank").rows() == [("full", "a", 1), ("full", "b", 2),
                                                                 ("uni100", "b", 1), ("uni100", "a", 2)]
    tests = comparison_rows([("d", "a", "b", "all", 0.2, 0.001), ("d", "a", "b", "items_tail", 0.0, 0.7)],
                            protocol="uni100")
    assert lines_of(pl.concat([tests, comparison_rows([])])) == [
        "b beats a overall by 0.20 uni100 NDCG@10 (p=0.001) but not significantly on tail items (+0.00, p=0.7)"]
    old = compare_run(full.drop("protocol"), tests.drop("protocol"))
    assert old.rankings["protocol"].to_list() == [None, None] and old.insights["protocol"].to_list() == [None]


def test_repeated_metric_rows_and_missing_columns_are_errors_that_name_them():
    row = ("d", "a", "all", 0.3, None, None)
    with pytest.raises(DataError, match="repeat a key.*model='a'"):
        rank_models(metric_rows([row, row]))
    with pytest.raises(DataError, match="column 'ci_low'"):
        rank_models(metric_rows([row]).drop("ci_low"))
    two_runs = metric_rows([row, row]).with_columns(run_id=pl.Series(["r1", "r2"]))
    with pytest.raises(DataError, match="come from 2 runs"):
        compare_run(two_runs, NO_COMPARISONS)


# ---------------------------------------------------------------- tradeoff lines


def lines_of(comparisons: pl.DataFrame, metric_frame: pl.DataFrame | None = None, **settings) -> list[str]:
    metric_frame = metric_rows([]) if metric_frame is None else metric_frame
    result = compare_run(metric_frame, comparisons, CompareConfig(**settings))
    return result.insights["text"].to_list()


def test_a_significant_win_and_a_significant_loss_make_one_line_worded_like_the_example():
    comparisons = comparison_rows([
        ("d", "mf", "two_tower", "cold_start_users", 0.0812, 0.0002),
        ("d", "mf", "two_tower", "activity_q4", -0.031, 0.004),
        ("d", "mf", "two_tower", "activity_q1", 0.02, 0.2),
        ("d", "mf", "two_tower", "activity_q2", 0.0, 0.9),
    ])
    result = compare_run(metric_rows([]), comparisons)
    assert result.insights["text"].to_list() == [
        "two_tower beats mf on cold-start users by 0.081 NDCG@10 (p<0.001) but trails it on heavy users by 0.031 "
        "(p=0.004)"]
    row = result.insights.row(0, named=True)
    assert (row["kind"], row["dataset"], row["split"], row["model"], row["other_model"], row["segment"],
            row["other_segment"], row["metric"], row["k"]) == ("tradeoff", "d", "test", "two_tower", "mf",
                                                               "cold_start_users", "activity_q4", "ndcg", 10)
    assert row["delta"] == pytest.approx(0.0812) and row["p_value"] == 0.0002


def test_the_larger_win_leads_whichever_model_is_the_baseline():
    comparisons = comparison_rows([
        ("d", "pop", "mf", "activity_q1", -0.01, 0.01),      # pop ahead on light users by 0.01
        ("d", "pop", "mf", "activity_q4", 0.20, 0.001),      # mf ahead on heavy users by 0.20
    ])
    assert lines_of(comparisons) == [
        "mf beats pop on heavy users by 0.20 NDCG@10 (p=0.001) but trails it on light users by 0.01 (p=0.01)"]


def test_a_win_next_to_an_untested_difference_says_not_significantly():
    comparisons = comparison_rows([
        ("d", "pop", "mf", "all", 0.05, 0.0001),
        ("d", "pop", "mf", "cold_start_users", -0.02, 0.30),
        ("d", "pop", "mf", "items_tail", 0.01, 0.04),
    ])
    assert lines_of(comparisons) == [
        "mf beats pop overall by 0.05 NDCG@10 (p<0.001) but not significantly on cold-start users (-0.02, p=0.3)"]


def test_no_line_claims_a_difference_that_is_not_significant():
    # a win on every segment: no contrast, so no trade-off line
    everywhere = comparison_rows([("d", "pop", "mf", s, 0.1, 0.001) for s in ("all", "cold_start_users")])
    assert lines_of(everywhere) == []
    # nothing significant after adjustment (raw p-values small, adjusted ones not; alpha itself is not below alpha)
    unadjusted = comparison_rows([("d", "pop", "mf", "all", 0.3, 0.05), ("d", "pop", "mf", "items_tail", -0.3, 0.2)])
    unadjusted = unadjusted.with_columns(p_value=pl.lit(1e-6))
    assert lines_of(unadjusted) == []
    # an undefined test (NaN or null p) is neither a win nor a contrast
    undefined = comparison_rows([("d", "pop", "mf", "all", 0.2, float("nan")), ("d", "pop", "mf", "items_tail", 0.0, None)])
    assert lines_of(undefined) == []
    # a stricter alpha removes the claim
    one = comparison_rows([("d", "pop", "mf", "all", 0.05, 0.02), ("d", "pop", "mf", "items_tail", 0.0, 0.8)])
    assert len(lines_of(one)) == 1
    assert compare_run(metric_rows([]), one, alpha=0.01).insights.height == 0


def test_lower_is_better_metrics_flip_who_beats_whom():
    comparisons = comparison_rows([("d", "pop", "mf", "all", -0.2, 0.001), ("d", "pop", "mf", "items_tail", 0.01, 0.5)],
                                  metric="gini")
    assert lines_of(comparisons, metrics=["gini@10"]) == [
        "mf beats pop overall by 0.20 Gini@10 (p=0.001) but not significantly on tail items (+0.01, p=0.5)"]


def test_lines_talk_only_about_the_configured_split_and_metrics():
    rows = [("d", "pop", "mf", "all", 0.05, 0.001), ("d", "pop", "mf", "items_tail", 0.0, 0.9)]
    val = comparison_rows(rows, split="val")
    recall = comparison_rows(rows, metric="recall", k=20)
    assert lines_of(pl.concat([val, recall])) == []
    assert len(lines_of(val, split="val")) == 1
    assert lines_of(recall, metrics=["recall@20"])[0].endswith("(+0.00, p=0.9)")


# ---------------------------------------------------------------- segment lines


def test_best_and_worst_segments_only_where_the_interval_excludes_the_overall_value():
    metrics = metric_rows([
        ("d", "mf", "all", 0.16, 0.15, 0.17),
        ("d", "mf", "activity_q4", 0.21, 0.19, 0.23),        # clearly above
        ("d", "mf", "activity_q3", 0.30, 0.10, 0.50),        # higher, but the interval holds 0.16
        ("d", "mf", "cold_start_users", 0.02, 0.01, 0.03),   # clearly below
        ("d", "mf", "activity_q1", 0.10, 0.05, 0.15),        # clearly below, less so
        ("d", "pop", "all", 0.10, 0.09, 0.11),
        ("d", "pop", "items_tail", 0.11, 0.05, 0.17),        # nothing clear for pop
    ])
    result = compare_run(metrics, NO_COMPARISONS)
    assert result.insights.select("kind", "model", "segment", "other_segment", "text").rows() == [
        ("best_segment", "mf", "activity_q4", "all",
         "mf does best on heavy users: 0.21 NDCG@10 against 0.16 overall (95% CI 0.19 to 0.23)"),
        ("worst_segment", "mf", "cold_start_users", "all",
         "mf does worst on cold-start users: 0.02 NDCG@10 against 0.16 overall (95% CI 0.01 to 0.03)"),
    ]
    assert result.insights["delta"].to_list() == pytest.approx([0.05, -0.14])
    assert result.insights["p_value"].to_list() == [None, None]
    assert compare_run(metrics, NO_COMPARISONS, confidence=0.9).insights["text"][0].endswith("(90% CI 0.19 to 0.23)")


def test_segments_and_tests_on_too_few_users_make_no_line():
    metrics = metric_rows([
        ("d", "mf", "all", 0.16, 0.15, 0.17),
        ("d", "mf", "cold_items", 0.0, 0.0, 0.0),            # one user: an interval of [0, 0] says nothing
        ("d", "mf", "activity_q4", 0.21, 0.19, 0.23),
    ]).with_columns(n_users=pl.Series([600, 1, 150]))
    comparisons = comparison_rows([("d", "pop", "mf", "cold_start_users", 0.08, 0.0001),
                                   ("d", "pop", "mf", "activity_q4", -0.03, 0.004)])
    comparisons = comparisons.with_columns(n_users=pl.Series([5, 150]))
    kept = compare_run(metrics, comparisons).insights
    assert kept.select("kind", "segment").rows() == [("best_segment", "activity_q4")]
    everything = compare_run(metrics, comparisons, CompareConfig(min_users=1)).insights
    assert set(everything["segment"]) == {"cold_items", "activity_q4", "cold_start_users"}


# ---------------------------------------------------------------- rank changes


def test_a_model_ranked_differently_on_two_datasets_gets_a_line():
    metrics = metric_rows([
        ("movielens", "sasrec", "all", 0.30, None, None), ("movielens", "mf", "all", 0.20, None, None),
        ("movielens", "pop", "all", 0.10, None, None),
        ("synthetic", "sasrec", "all", 0.05, None, None), ("synthetic", "mf", "all", 0.20, None, None),
        ("synthetic", "pop", "all", 0.20, None, None),
    ])
    result = compare_run(metrics, NO_COMPARISONS)
    rows = result.insights.select("dataset", "kind", "model", "delta", "text").rows()
    assert rows == [                                                  # equal effects: by model name
        (None, "rank_change", "pop", 2.0, "pop ranks 1st (tied) of 3 on synthetic but 3rd of 3 on movielens (NDCG@10)"),
        (None, "rank_change", "sasrec", 2.0, "sasrec ranks 1st of 3 on movielens but 3rd of 3 on synthetic (NDCG@10)"),
        (None, "rank_change", "mf", 1.0, "mf ranks 1st (tied) of 3 on synthetic but 2nd of 3 on movielens (NDCG@10)"),
    ]
    assert result.lines()[1] == "[all datasets] sasrec ranks 1st of 3 on movielens but 3rd of 3 on synthetic (NDCG@10)"


def test_three_datasets_list_every_place_and_equal_ranks_say_nothing():
    metrics = metric_rows([(d, m, "all", v, None, None) for d, m, v in [
        ("a", "x", 0.3), ("a", "y", 0.1), ("b", "x", 0.1), ("b", "y", 0.3), ("c", "x", 0.3), ("c", "y", 0.2)]])
    texts = lines_of(NO_COMPARISONS, metrics)
    assert texts == ["x ranks 1st of 2 on a, 1st of 2 on c but 2nd of 2 on b (NDCG@10)",
                     "y ranks 1st of 2 on b, 2nd of 2 on a but 2nd of 2 on c (NDCG@10)"]
    same = metric_rows([(d, m, "all", v, None, None) for d, m, v in [("a", "x", 0.3), ("a", "y", 0.1),
                                                                   ("b", "x", 0.5), ("b", "y", 0.2)]])
    assert lines_of(NO_COMPARISONS, same) == []


# ---------------------------------------------------------------- order and caps


def test_lines_are_sorted_by_effect_capped_per_kind_and_independent_of_row_order():
    rows = []
    for i, candidate in enumerate(["m1", "m2", "m3", "m4"]):
        rows += [("d", "pop", candidate, "all", 0.01 * (i + 1), 0.001), ("d", "pop", candidate, "items_tail", 0.0, 0.9)]
    comparisons = comparison_rows(rows)
    capped = compare_run(metric_rows([]), comparisons, CompareConfig(max_lines=2)).insights
    assert capped["model"].to_list() == ["m4", "m3"] and capped["delta"].to_list() == pytest.approx([0.04, 0.03])
    shuffled = comparisons.sample(fraction=1.0, shuffle=True, seed=3)
    assert compare_run(metric_rows([]), shuffled, CompareConfig(max_lines=2)).insights.equals(capped)
    assert compare_run(metric_rows([]), comparisons, CompareConfig(max_lines=0)).insights.height == 0


def test_each_dataset_has_its_own_cap_and_datasets_come_in_name_order():
    rows = [(d, "pop", c, s, delta, p) for d in ("b", "a") for c in ("m1", "m2")
            for s, delta, p in (("all", 0.1, 0.001), ("items_tail", 0.0, 0.9))]
    insights = compare_run(metric_rows([]), comparison_rows(rows), CompareConfig(max_lines=1)).insights
    assert insights.select("dataset", "model").rows() == [("a", "m1"), ("b", "m1")]


# ---------------------------------------------------------------- property: every claim is significant


ALPHA = 0.05
SEGMENTS = ["all", "activity_q1", "activity_q2", "cold_start_users", "items_tail"]
p_values = st.one_of(st.sampled_from([None, float("nan"), 0.0001, 0.01, 0.049, 0.05, 0.051, 0.1, 0.3, 0.9]),
                     st.floats(0.0, 1.0))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["a", "b", "c"]),
                          st.sampled_from(SEGMENTS), st.sampled_from([-0.2, -0.01, 0.0, 0.01, 0.2]) | st.floats(-0.5, 0.5),
                          p_values), max_size=25))
def test_every_tradeoff_claim_rests_on_an_adjusted_p_below_alpha(raw):
    seen, rows = set(), []
    for baseline, candidate, segment, delta, p in raw:
        pair = frozenset((baseline, candidate))
        if baseline == candidate or (pair, segment) in seen:
            continue
        seen.add((pair, segment))
        rows.append(("d", baseline, candidate, segment, delta, p))
    comparisons = comparison_rows(rows)
    insights = insight_lines(metric_rows([]), comparisons, rank_models(metric_rows([])), CompareConfig(max_lines=99),
                             alpha=ALPHA)

    def tested(model, other, segment):
        for d, b, c, s, delta, p in rows:
            if s == segment and {b, c} == {model, other}:
                return (delta if c == model else -delta), p
        raise AssertionError("a line names a comparison that does not exist")

    for line in insights.iter_rows(named=True):
        delta, p = tested(line["model"], line["other_model"], line["segment"])
        assert p is not None and p < ALPHA and delta > 0 and line["p_value"] == p
        assert line["delta"] == pytest.approx(delta)
        contrast, contrast_p = tested(line["model"], line["other_model"], line["other_segment"])
        assert contrast_p is not None and not math.isnan(contrast_p)
        if "trails it" in line["text"]:
            assert contrast_p < ALPHA and contrast < 0
        else:
            assert "but not significantly" in line["text"] and contrast_p >= ALPHA
        assert line["model"] in line["text"].split(" beats ")[0]


# ---------------------------------------------------------------- settings


def test_compare_settings_are_checked_with_the_setting_named():
    with pytest.raises(ConfigError, match="compare.split"):
        check_compare_config(CompareConfig(split="train"))
    with pytest.raises(ConfigError, match="compare.max_lines"):
        check_compare_config(CompareConfig(max_lines=-1))
    with pytest.raises(ConfigError, match="compare.min_users"):
        check_compare_config(CompareConfig(min_users=0))
    with pytest.raises(ConfigError, match="compare.metrics.*cannot read metric 'ndcg@x'"):
        check_compare_config(CompareConfig(metrics=["ndcg@x"]))
    with pytest.raises(ConfigError, match="compare.metrics.*no metric"):
        check_compare_config(CompareConfig(metrics=[]))
    with pytest.raises(ConfigError, match="cut-off 50 of 'recall@50' is not evaluated"):
        check_compare_config(CompareConfig(metrics=["recall@50"]), ks=[5, 10, 20])
    check_compare_config(CompareConfig(metrics=["auc", "recall@20"]), ks=[5, 10, 20])
