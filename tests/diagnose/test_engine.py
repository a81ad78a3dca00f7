"""The engine: a healthy run gives no warnings, planted faults give their codes, skips are reported,
rules never raise on random tables, and loss scale or row order change nothing."""

from __future__ import annotations

import logging

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.diagnose.config import DiagnoseConfig
from recsys.diagnose.engine import RULES, Skipped, diagnose, order, run_rules
from recsys.diagnose.finding import CODES
from recsys.diagnose.inputs import DiagnosisInputs
from recsys.diagnose.summary import summarize
from recsys.errors import ConfigError, DataError
from tests.diagnose.builders import (SPE, comparison, curves, grad_rows, healthy_grads, healthy_inputs,
                                     healthy_step_loss, healthy_val, metric)

CFG = DiagnoseConfig()


def test_healthy_run_gives_no_findings_at_all():
    result = run_rules(healthy_inputs(), CFG)
    assert result.findings == [] and result.skipped == []


def test_every_code_comes_from_exactly_the_rules_that_declare_it():
    declared = [code for spec in RULES.values() for code in spec.codes]
    assert set(declared) == set(CODES)
    assert len(set(declared)) == len(declared) - 1          # DEAD_EMBEDDING_ROWS: from two tables


def planted() -> DiagnosisInputs:
    """The healthy run with faults planted in mf: a diverging loss, exploding gradients, losing to pop."""
    base = healthy_inputs()
    loss = np.concatenate([np.full(50, 6.0), np.full(50, 3.0), np.full(100, 9.0)])
    spikes = np.ones(40)
    spikes[30] = 500.0
    grads = pl.concat([base.grad_stats, pl.DataFrame(grad_rows("mf", "item_embedding.weight", spikes))],
                      how="diagonal_relaxed")
    comparisons = pl.DataFrame([comparison("mf", -0.03, 1e-4), comparison("two_tower", 0.09, 1e-8)])
    curve_frame = base.curves.filter(pl.col("model") != "mf")
    return DiagnosisInputs(curves=pl.concat([curve_frame, curves("mf", loss, healthy_val())]), grad_stats=grads,
                           embedding_health=base.embedding_health, metrics=base.metrics, comparisons=comparisons,
                           feature_importance=base.feature_importance, item_norms=base.item_norms)


def test_planted_faults_are_found_and_ordered_worst_first():
    found = diagnose(planted(), CFG)
    assert [(f.model, f.code, f.severity) for f in found] == [
        ("mf", "EXPLODING_GRADIENTS", "critical"),
        ("mf", "LOSS_DIVERGENCE", "critical"),
        ("mf", "NOT_BEATING_POPULARITY", "critical"),
    ]


def test_rules_without_their_tables_are_skipped_and_logged(caplog):
    with caplog.at_level(logging.INFO, logger="recsys.diagnose.engine"):
        result = run_rules(DiagnosisInputs(curves=curves("mf", healthy_step_loss())), CFG)
    skipped = {s.rule: s.reason for s in result.skipped}
    assert "nan_loss" not in skipped and "overfitting" not in skipped
    assert skipped["underfitting"] == "no metrics table"
    assert skipped["not_beating_popularity"] == "no comparisons or metrics tables"
    assert skipped["nan_gradients"] == "no grad_stats table"
    assert "diagnosis rule nan_gradients skipped: no grad_stats table" in caplog.text


def test_empty_tables_count_as_missing():
    empty = pl.DataFrame(schema={"model": pl.String, "step": pl.Int64, "layer": pl.String})
    result = run_rules(DiagnosisInputs(grad_stats=empty), CFG)
    assert result.findings == [] and len(result.skipped) == len(RULES)


def test_disabled_rules_are_skipped_and_unknown_names_refused():
    cfg = DiagnoseConfig(disabled_rules=["not_beating_popularity"])
    result = run_rules(planted(), cfg)
    assert "NOT_BEATING_POPULARITY" not in {f.code for f in result.findings}
    assert Skipped("not_beating_popularity", "disabled by diagnose.disabled_rules") in result.skipped
    with pytest.raises(ConfigError, match="diagnose.disabled_rules': unknown rule\\(s\\) nan_los"):
        run_rules(planted(), DiagnoseConfig(disabled_rules=["nan_los"]))


def test_a_table_missing_a_needed_column_is_a_data_error_naming_it():
    with pytest.raises(DataError, match="table grad_stats, column 'layer': missing column\\(s\\) layer"):
        run_rules(DiagnosisInputs(grad_stats=pl.DataFrame({"model": ["mf"], "step": [1]})), CFG)
    with pytest.raises(DataError, match="column 'value': values do not cast"):
        run_rules(DiagnosisInputs(curves=pl.DataFrame({"model": ["mf"], "step": [1], "name": ["x"],
                                                       "value": ["high"]})), CFG)


def test_order_puts_models_then_severity_then_code():
    found = diagnose(planted(), CFG)
    assert order(list(reversed(found))) == found


def test_summary_lists_each_model_worst_first_with_remedies():
    text = summarize(diagnose(planted(), CFG), models=["pop", "mf", "two_tower"])
    lines = text.splitlines()
    assert lines[0] == "diagnosis: 3 findings (3 critical, 0 warning, 0 info) in 3 models"
    assert lines[2] == "mf: 3 critical"
    assert lines[3].startswith("  CRITICAL EXPLODING_GRADIENTS  layer=item_embedding.weight")
    assert "edits: train.grad_clip = 1.0; train.lr x0.1" in text
    assert lines[-3:] == ["pop: no findings", "", "two_tower: no findings"]
    assert all(len(line) <= 100 for line in lines)
    assert summarize([]) == "diagnosis: no findings"


# ------------------------------------------------------------------ properties


SCENARIOS = {
    "healthy": lambda: (healthy_step_loss(seed=5), healthy_val(seed=5)),
    "diverging": lambda: (np.concatenate([np.full(50, 6.0), np.full(50, 3.0), np.full(100, 4.8)]), healthy_val()),
    "plateau": lambda: (np.repeat(7.0 - 0.007 * np.arange(20), SPE), healthy_val()),
    "oscillating": lambda: (5.0 + 1.5 * (-1.0) ** np.arange(200), healthy_val()),
    "overfitting": lambda: (np.repeat(7.0 - 0.1 * np.arange(10), SPE),
                            [0.10, 0.15, 0.20, 0.20, 0.20, 0.18, 0.16, 0.14, 0.12, 0.10]),
    "nan": lambda: (np.where(np.arange(200) == 57, np.nan, healthy_step_loss()), healthy_val()),
}
WEAK_METRICS = pl.DataFrame([metric("pop", "ndcg", 0.05), metric("mf", "ndcg", 0.052)])


def curve_findings(loss, val, scale: float) -> list[tuple]:
    inputs = DiagnosisInputs(curves=curves("mf", np.asarray(loss) * scale, val), metrics=WEAK_METRICS)
    return [(f.code, f.severity, f.where) for f in diagnose(inputs, CFG)]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(SCENARIOS)), st.floats(1e-3, 1e3))
def test_scaling_the_loss_by_a_positive_constant_changes_no_finding(name, scale):
    loss, val = SCENARIOS[name]()
    assert curve_findings(loss, val, scale) == curve_findings(loss, val, 1.0)


def test_each_scenario_gives_its_own_finding():
    codes = {name: {code for code, _, _ in curve_findings(*SCENARIOS[name](), 1.0)} for name in SCENARIOS}
    assert codes == {"healthy": set(), "diverging": {"LOSS_DIVERGENCE"}, "plateau": {"LOSS_PLATEAU", "UNDERFITTING"},
                     "oscillating": {"LOSS_OSCILLATION"}, "overfitting": {"OVERFITTING"}, "nan": {"NAN_LOSS"}}


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_row_order_changes_no_finding(seed):
    inputs = planted()
    shuffled = DiagnosisInputs(**{name: getattr(inputs, name).sample(fraction=1.0, shuffle=True, seed=seed)
                                  for name in inputs.available()})
    assert [f.to_dict() for f in diagnose(shuffled, CFG)] == [f.to_dict() for f in diagnose(inputs, CFG)]


MODELS = st.sampled_from(["pop", "mf", "two_tower"])
NUM = st.one_of(st.none(), st.floats(-1e6, 1e6), st.sampled_from([0.0, 1.0, float("nan"), float("inf")]))
POS = st.one_of(st.none(), st.floats(0, 1e4), st.just(0.0))
SPLIT = st.sampled_from(["val", "test"])


def frame(rows: st.SearchStrategy, schema: dict) -> st.SearchStrategy:
    return st.lists(rows, max_size=25).map(lambda r: pl.DataFrame(r, schema=schema, orient="row"))


TABLES = {
    "curves": frame(st.tuples(MODELS, st.integers(0, 40), st.one_of(st.none(), st.integers(0, 5)),
                              st.sampled_from(["train/loss", "train/epoch_loss", "val/ndcg@10", "lr"]), NUM),
                    {"model": pl.String, "step": pl.Int64, "epoch": pl.Int32, "name": pl.String, "value": pl.Float64}),
    "grad_stats": frame(st.tuples(MODELS, st.integers(0, 30), st.sampled_from(["t.0.w", "t.2.w", "emb"]), NUM, NUM,
                                  NUM, st.integers(0, 3), POS),
                        {"model": pl.String, "step": pl.Int64, "layer": pl.String, "grad_norm": pl.Float64,
                         "weight_norm": pl.Float64, "update_ratio": pl.Float64, "nan_count": pl.Int64,
                         "rows_touched_share": pl.Float64}),
    "embedding_health": frame(st.tuples(MODELS, st.sampled_from(["item_id", "item_text"]), st.integers(0, 500),
                                        st.integers(0, 64), NUM, NUM, st.one_of(st.none(), st.integers(0, 600))),
                              {"model": pl.String, "embedding": pl.String, "n_rows": pl.Int64, "dim": pl.Int32,
                               "effective_rank": pl.Float64, "mean_cosine": pl.Float64, "dead_rows": pl.Int64}),
    "metrics": frame(st.tuples(MODELS, SPLIT, st.sampled_from(["all", "cold"]),
                               st.sampled_from(["ndcg", "popularity", "test_popularity", "coverage"]),
                               st.sampled_from([None, 10]), NUM, NUM, st.one_of(st.none(), st.integers(0, 50))),
                     {"model": pl.String, "split": pl.String, "segment": pl.String, "metric": pl.String,
                      "k": pl.Int32, "value": pl.Float64, "ci_high": pl.Float64, "n_users": pl.Int64}),
    "comparisons": frame(st.tuples(MODELS, MODELS, SPLIT, NUM, st.one_of(st.none(), st.floats(0, 1))),
                         {"baseline": pl.String, "candidate": pl.String, "split": pl.String, "delta": pl.Float64,
                          "p_adjusted": pl.Float64}).map(lambda df: df.with_columns(
                              metric=pl.lit("ndcg"), k=pl.lit(10, dtype=pl.Int32), segment=pl.lit("all"))),
    "feature_importance": frame(st.tuples(MODELS, SPLIT, st.sampled_from(["text", "item_id", "title", ""]),
                                          st.sampled_from([None, "text_field"]), NUM, NUM, NUM, NUM),
                                {"model": pl.String, "split": pl.String, "feature": pl.String,
                                 "feature_group": pl.String, "baseline_value": pl.Float64, "drop": pl.Float64,
                                 "ci_low": pl.Float64, "ci_high": pl.Float64}).map(lambda df: df.with_columns(
                                     method=pl.lit("ablation"), metric=pl.lit("ndcg"),
                                     k=pl.lit(10, dtype=pl.Int32))),
    "item_norms": frame(st.tuples(MODELS, st.just("item_id"), POS, NUM),
                        {"model": pl.String, "embedding": pl.String, "popularity": pl.Float64, "norm": pl.Float64}),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries(TABLES))
def test_rules_never_raise_on_random_tables(tables):
    result = run_rules(DiagnosisInputs(**tables), CFG)
    for f in result.findings:
        assert f.code in CODES and f.to_dict()
    summarize(result.findings)


def test_grad_stats_with_only_healthy_rows_still_judges_other_models():
    frame_ = pl.concat([healthy_grads(), pl.DataFrame(grad_rows("mf", "w", np.ones(20), np.full(20, 0.5)))],
                       how="diagonal_relaxed")
    assert [(f.model, f.code) for f in diagnose(DiagnosisInputs(grad_stats=frame_), CFG)] == [("mf", "LR_TOO_HIGH")]
