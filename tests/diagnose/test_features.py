"""Feature rules on hand-built feature_importance rows."""

from __future__ import annotations

import polars as pl
import pytest

from recsys.diagnose.config import DiagnoseConfig
from recsys.diagnose.features import feature_rules
from recsys.diagnose.inputs import DiagnosisInputs
from tests.diagnose.builders import healthy_importance, importance

CFG = DiagnoseConfig()


def run(rows) -> list:
    return feature_rules(DiagnosisInputs(feature_importance=pl.DataFrame(rows)).prepared(), CFG)


def test_healthy_importance_triggers_nothing():
    assert run(healthy_importance()) == []


def test_text_that_barely_matters_is_ignored():
    [f] = run([importance("two_tower", "text", 0.001, ci=(-0.002, 0.004)), importance("two_tower", "item_id", 0.05)])
    assert (f.code, f.severity, f.where) == ("TEXT_IGNORED", "warning", {
        "model": "two_tower", "table": "feature_importance", "feature": "text"})
    assert f.evidence["rel_drop"] == pytest.approx(0.001 / 0.12)
    assert f.remedy.edit_dicts() == [{"param": "encoder.name", "op": "choice_add", "value": "bert-base"}]


def test_text_whose_drop_is_a_few_percent_and_not_significant_is_ignored():
    # measured: random genre names as item text cost 2.7% of ndcg@10, interval -0.0037..0.0152 on 246 users
    [f] = run([importance("two_tower", "text", 0.0055, base=0.2047, ci=(-0.0037, 0.0152))])
    assert f.code == "TEXT_IGNORED" and f.evidence["text_ignored_rel_drop"] == 0.05
    assert run([importance("two_tower", "text", 0.012, base=0.2, ci=(-0.001, 0.025))]) == []   # 6%: not ignored


def test_a_small_but_significant_text_drop_is_not_ignored():
    assert run([importance("two_tower", "text", 0.001, ci=(0.0005, 0.0015))]) == []


def test_text_carrying_the_model_while_ids_add_nothing():
    found = run([importance("two_tower", "text", 0.09, ci=(0.08, 0.1)),
                 importance("two_tower", "item_id", 0.001, ci=(-0.002, 0.004))])
    assert [(f.code, f.severity) for f in found] == [("TEXT_DOMINANT", "info"), ("ID_EMBEDDINGS_UNUSED", "warning")]
    dominant, unused = found
    assert dominant.evidence["rel_drop"] == pytest.approx(0.75)
    assert dominant.evidence["id_rel_drop"] == pytest.approx(0.001 / 0.12)
    assert unused.remedy.edit_dicts() == [{"param": "model.two_tower.use_item_id", "op": "choice_add",
                                           "value": False}]


def test_text_dominance_needs_an_id_ablation_to_compare_with():
    assert run([importance("content", "text", 0.11, ci=(0.1, 0.12))]) == []


def test_a_text_field_whose_removal_helps_hurts():
    rows = [importance("two_tower", "text", 0.03), importance("two_tower", "description", -0.006,
                                                              group="text_field", ci=(-0.009, -0.003))]
    [f] = run(rows)
    assert (f.code, f.severity, f.where["feature"]) == ("TEXT_FIELD_HURTS", "warning", "description")
    assert f.evidence["rel_drop"] == pytest.approx(-0.05)
    assert f.remedy.edit_dicts() == [{"param": "encoder.template", "op": "remove_field", "value": "description"}]


def test_the_first_configured_method_and_split_are_read():
    rows = [importance("two_tower", "text", 0.001, method="permutation"),
            importance("two_tower", "text", 0.05, method="ablation"),
            importance("two_tower", "text", 0.001, method="ablation", split="test"),
            importance("two_tower", "text", 0.001, method="gradient")]
    assert run(rows) == []
    [f] = run(rows[:1] + rows[3:])
    assert f.evidence["method"] == "permutation"
