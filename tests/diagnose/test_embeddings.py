"""Embedding rules on hand-built embedding_health rows and item norms."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys.diagnose.config import DiagnoseConfig
from recsys.diagnose.embeddings import (anisotropic_text_vectors, dead_rows_from_health, dimensional_collapse,
                                        norm_popularity_coupling)
from recsys.diagnose.inputs import DiagnosisInputs
from recsys.diagnose.series import spearman
from tests.diagnose.builders import health_row, healthy_health, healthy_item_norms, item_norms

CFG = DiagnoseConfig()
HEALTH_RULES = [dead_rows_from_health, dimensional_collapse, anisotropic_text_vectors]


def run(rule, rows=None, norms=None) -> list:
    health = pl.DataFrame(rows) if isinstance(rows, list) else rows
    return rule(DiagnosisInputs(embedding_health=health, item_norms=norms).prepared(), CFG)


@pytest.mark.parametrize("rule", HEALTH_RULES)
def test_healthy_embeddings_trigger_nothing(rule):
    assert run(rule, healthy_health()) == []


@pytest.mark.parametrize(("dead", "severity"), [(50, "warning"), (300, "critical")])
def test_dead_rows_share(dead, severity):
    [f] = run(dead_rows_from_health, [health_row("mf", "item_id", n_rows=500, dead_rows=dead)])
    assert (f.code, f.severity) == ("DEAD_EMBEDDING_ROWS", severity)
    assert f.where == {"model": "mf", "table": "embedding_health", "embedding": "item_id"}
    assert f.evidence["dead_share"] == pytest.approx(dead / 500)


@pytest.mark.parametrize(("rank", "severity"), [(8.0, "warning"), (1.5, "critical")])
def test_effective_rank_far_below_the_dimension_is_collapse(rank, severity):
    [f] = run(dimensional_collapse, [health_row("mf", "item_id", dim=64, effective_rank=rank)])
    assert (f.code, f.severity) == ("DIMENSIONAL_COLLAPSE", severity)
    assert f.evidence["rank_ratio"] == pytest.approx(rank / 64)


def test_collapse_is_judged_against_the_rows_when_there_are_fewer_rows_than_dimensions():
    assert run(dimensional_collapse, [health_row("mf", "item_id", n_rows=10, dim=64, effective_rank=8.0)]) == []
    assert run(dimensional_collapse, [health_row("mf", "item_id", n_rows=3, dim=64, effective_rank=1.0)]) == []


def test_norms_that_follow_popularity_are_coupled():
    pop = np.arange(1, 101, dtype=float)
    [f] = run(norm_popularity_coupling, norms=item_norms("mf", np.sqrt(pop), pop))
    assert (f.code, f.severity, f.where) == ("NORM_POPULARITY_COUPLING", "critical",
                                             {"model": "mf", "table": "item_norms", "embedding": "item_id"})
    assert f.evidence["spearman"] == pytest.approx(1.0) and f.evidence["n_items"] == 100


def test_partial_coupling_is_a_warning_with_the_textbook_spearman():
    rng = np.random.default_rng(3)
    pop = rng.permutation(200).astype(float) + 1
    norms = pop + rng.normal(0, 60, 200)
    d = np.argsort(np.argsort(pop)) - np.argsort(np.argsort(norms))          # no ties
    textbook = 1 - 6 * (d ** 2).sum() / (200 * (200 ** 2 - 1))
    assert 0.5 <= textbook < 0.8
    [f] = run(norm_popularity_coupling, norms=item_norms("mf", norms, pop))
    assert f.severity == "warning" and f.evidence["spearman"] == pytest.approx(textbook)


def test_independent_norms_and_too_few_items_are_not_coupled():
    assert run(norm_popularity_coupling, norms=healthy_item_norms()) == []
    pop = np.arange(1.0, 11.0)
    assert run(norm_popularity_coupling, norms=item_norms("mf", pop, pop)) == []


def test_spearman_averages_ties_and_refuses_constants():
    assert spearman(np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(np.sqrt(3) / 2)
    assert spearman(np.ones(5), np.arange(5.0)) is None


@pytest.mark.parametrize(("cosine", "severity"), [(0.7, "warning"), (0.95, "critical")])
def test_text_vectors_sharing_a_direction_are_anisotropic(cosine, severity):
    rows = [health_row("content", "item_text", dim=384, effective_rank=150.0, mean_cosine=cosine, isotropy=0.01),
            health_row("content", "item_id", mean_cosine=0.99)]
    [f] = run(anisotropic_text_vectors, rows)
    assert (f.code, f.severity, f.where["embedding"]) == ("ANISOTROPIC_TEXT_VECTORS", severity, "item_text")
    assert (f.evidence["mean_cosine"], f.evidence["isotropy"]) == (cosine, 0.01)


def popularity_metrics(model: str, ratio: float, coverage: float, pop_coverage: float = 0.1) -> pl.DataFrame:
    """val metrics of ``model`` and pop: recommended popularity ``ratio`` x the held-out items', coverage@10."""
    rows = [(model, "popularity", 10, 20.0 * ratio), (model, "test_popularity", None, 20.0),
            (model, "coverage", 10, coverage), ("pop", "coverage", 10, pop_coverage), (model, "ndcg", 10, 0.25)]
    return pl.DataFrame([{"model": m, "split": "val", "segment": "all", "metric": metric, "k": k, "value": v}
                         for m, metric, k, v in rows])


@pytest.mark.parametrize(("ratio", "coverage", "severity"), [
    (1.2, 0.33, "info"),           # sasrec, trained normally: healthy ratio and coverage, norms still coupled
    (3.0, 0.33, "critical"),       # recommendations 3x as popular as the held-out items
    (1.2, 0.15, "critical"),       # coverage 1.5x pop's, under the 2x level
])
def test_coupling_warns_only_when_the_recommendations_show_popularity_bias(ratio, coverage, severity):
    pop = np.arange(1, 101, dtype=float)
    norms = item_norms("sasrec", np.sqrt(pop), pop)
    inputs = DiagnosisInputs(item_norms=norms, metrics=popularity_metrics("sasrec", ratio, coverage)).prepared()
    [f] = norm_popularity_coupling(inputs, CFG)
    assert f.severity == severity and f.evidence["spearman"] == pytest.approx(1.0)
    assert f.evidence["outcome"]["biased"] is (severity != "info")
    assert f.evidence["outcome"]["ratio"] == pytest.approx(ratio)
    other = DiagnosisInputs(item_norms=norms, metrics=popularity_metrics("mf", 1.2, 0.33)).prepared()
    [g] = norm_popularity_coupling(other, CFG)                       # another model's numbers say nothing
    assert g.severity == "critical" and g.evidence["outcome"] is None
