"""Findings and remedies: validation, JSON evidence, and rows the report writer accepts."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys.diagnose.finding import CODES, Finding, jsonable, to_rows
from recsys.diagnose.remedies import OPS, SpaceEdit, applicable, model_edit, remedy, validate_edit
from recsys.errors import ConfigError
from recsys.report.reader import load_tables
from recsys.report.writer import write_part


def finding(**changes) -> Finding:
    base = dict(code="LR_TOO_HIGH", severity="warning", where={"model": "mf", "layer": "w", "segment": None},
                message="median update/weight ratio 0.3 > 0.1", evidence={"ratio": np.float32(0.25), "x": np.inf},
                remedy=remedy("Lower it.", {"param": "train.lr", "op": "scale_range", "factor": 0.1}))
    return Finding(**{**base, **changes})


def test_finding_drops_empty_locations_and_makes_evidence_json():
    f = finding()
    assert f.where == {"model": "mf", "layer": "w"}
    assert f.evidence == {"ratio": 0.25, "x": "inf"}
    json.dumps(f.to_dict(), allow_nan=False)


@pytest.mark.parametrize(("changes", "match"), [
    ({"code": "LR_HIGH"}, "unknown finding code 'LR_HIGH'"),
    ({"severity": "error"}, "unknown severity 'error'.*info, warning, critical"),
    ({"message": "two\nlines"}, "one non-empty line"),
])
def test_finding_rejects_unknown_codes_severities_and_multiline_messages(changes, match):
    with pytest.raises(ConfigError, match=match):
        finding(**changes)


def test_codes_are_upper_snake_with_a_family_and_component():
    for code, info in CODES.items():
        assert code == code.upper() and " " not in code
        assert info.family in {"gradients", "curves", "embeddings", "outcomes", "features", "encoder"}
        assert info.component in {"data", "embedding", "model", "training", "evaluation"}


@pytest.mark.parametrize("edit", [
    {"param": "train.lr", "op": "scale_range", "factor": 0.1},
    {"param": "model.two_tower.depth", "op": "add", "value": 1},
    {"param": "train.grad_clip", "op": "set", "value": 1.0},
    {"param": "train.grad_clip", "op": "set", "value": None},
    {"param": "train.loss", "op": "choice_add", "value": "bpr"},
    {"param": "model.mf.item_bias", "op": "enable"},
    {"param": "model.mf.item_bias", "op": "disable"},
    {"param": "encoder.template", "op": "remove_field", "value": "description"},
])
def test_valid_edits_round_trip(edit):
    assert validate_edit(edit).to_dict() == edit


@pytest.mark.parametrize(("edit", "match"), [
    ({"param": "lr", "op": "set", "value": 1}, "not a dotted setting path"),
    ({"param": "train.lr", "op": "scale_range", "factor": 0}, "finite factor > 0"),
    ({"param": "train.lr", "op": "scale_range", "factor": float("nan")}, "finite factor > 0"),
    ({"param": "train.lr", "op": "scale_range", "value": 0.1}, "takes no value"),
    ({"param": "train.epochs", "op": "add", "value": "1"}, "finite non-zero number"),
    ({"param": "train.epochs", "op": "add", "value": True}, "finite non-zero number"),
    ({"param": "train.lr", "op": "set"}, "needs a value"),
    ({"param": "train.lr", "op": "set", "value": {"a": 1}}, "JSON scalar or list"),
    ({"param": "model.mf.item_bias", "op": "enable", "value": True}, "takes no value"),
    ({"param": "encoder.template", "op": "remove_field", "value": ""}, "non-empty text"),
    ({"param": "train.lr", "op": "set", "value": 1, "why": "x"}, "unknown keys: \\['why'\\]"),
    ({"op": "set", "value": 1}, "needs keys param and op"),
])
def test_invalid_edits_are_refused_with_the_reason(edit, match):
    with pytest.raises(ConfigError, match=match):
        validate_edit(edit)


def test_every_op_describes_itself():
    samples = {"set": {"value": 1.0}, "scale_range": {"factor": 2.0}, "add": {"value": -1},
               "choice_add": {"value": "x"}, "enable": {}, "disable": {}, "remove_field": {"value": "tags"}}
    assert set(samples) == set(OPS)
    described = [SpaceEdit("a.b", op, **arg).describe() for op, arg in samples.items()]
    assert described == ["a.b = 1.0", "a.b x2", "a.b -1", "a.b also try 'x'", "a.b on", "a.b off",
                         "a.b without {tags}"]


def test_model_edits_skip_names_that_cannot_be_setting_paths():
    r = remedy("x", model_edit("my model", "dim", "scale_range", factor=2.0), model_edit("mf", "dim", "add", value=8))
    assert r.edit_dicts() == [{"param": "model.mf.dim", "op": "add", "value": 8}]
    assert applicable(r, {"train.lr"}).edits == ()


@given(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text())
def test_jsonable_output_is_strict_json(x, n, s):
    json.dumps(jsonable({"x": x, "n": np.int64(n % 2**62), "s": s, "l": (x, [x])}), allow_nan=False)


def test_rows_are_written_and_read_back_by_the_report(tmp_path):
    f1 = finding(where={"model": "mf", "trial_id": "t3", "layer": "w"})
    f2 = Finding("TEXT_DOMINANT", "info", {"model": "two_tower"}, "text carries it", {}, remedy("Fine."))
    rows = to_rows([f1, f2], "synthetic", round=1)
    write_part(tmp_path, "findings", rows, "r1")
    table = load_tables(tmp_path)["findings"].sort("code")
    assert table.get_column("code").to_list() == ["LR_TOO_HIGH", "TEXT_DOMINANT"]
    first = table.row(0, named=True)
    assert (first["run_id"], first["dataset"], first["model"], first["trial_id"], first["round"]) == (
        "r1", "synthetic", "mf", "t3", 1)
    assert (first["severity"], first["component"], first["advice"]) == ("warning", "training", "Lower it.")
    assert json.loads(first["location"]) == {"model": "mf", "trial_id": "t3", "layer": "w"}
    assert json.loads(first["evidence"]) == {"ratio": 0.25, "x": "inf"}
    assert json.loads(first["remedy"]) == [{"param": "train.lr", "op": "scale_range", "factor": 0.1}]
    assert table.row(1, named=True)["remedy"] is None
    assert table.filter(pl.col("severity") == "info").height == 1
