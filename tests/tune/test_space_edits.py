"""Search spaces as data, and every remedy op's edit of a space (pure: no Ray)."""

from __future__ import annotations

import pytest

from rayjobs._common import compose
from recsys.config import RecsysConfig
from recsys.diagnose.finding import Finding
from recsys.diagnose.remedies import SpaceEdit, remedy
from recsys.errors import ConfigError
from recsys.tune.edits import apply_edit, apply_remedies, steering_findings
from recsys.tune.settings import get_setting, with_settings
from recsys.tune.space import Param, for_model, space_from_mapping, to_tune

BASE = {"train.lr": 0.5, "model.mf.dim": 64, "model.two_tower.depth": 1, "model.two_tower.normalize": False,
        "train.loss": "softmax", "model.two_tower.dropout": 0.1, "train.grad_clip": None,
        "encoder.template": "{title}[. Genres: {genres}][. {description}]"}


def edit(space, param, op, **arg):
    return apply_edit(space, SpaceEdit(param, op, **arg), baseline=BASE.__getitem__, code="X")


# ------------------------------------------------------------------ space


def test_the_default_space_parses_and_every_path_is_a_real_setting():
    cfg = compose([])
    space = space_from_mapping(cfg.tune.space)
    assert {"train.lr", "model.two_tower.depth", "model.sasrec.layers"} <= set(space)
    for path, param in space.items():
        value = get_setting(cfg, path)                     # raises for a misspelt path
        if param.type == "choice":
            with_settings(cfg, {path: param.values[0]})   # each choice fits the setting's type
        assert value is None or param.type != "fixed" or with_settings(cfg, {path: param.value})


def test_for_model_keeps_training_settings_and_only_that_models_own():
    space = space_from_mapping(compose([]).tune.space)
    mf = for_model(space, "mf")
    assert "train.lr" in mf and "model.mf.dim" in mf and not any(p.startswith("model.two_tower") for p in mf)


@pytest.mark.parametrize("spec, problem", [
    ({"type": "loguniform", "low": 0.0, "high": 1.0}, "low > 0"),
    ({"type": "uniform", "low": 1.0, "high": 0.5}, "above high"),
    ({"type": "int", "low": 0.5, "high": 2}, "whole"),
    ({"type": "choice", "values": []}, "at least one value"),
    ({"type": "normal", "low": 0, "high": 1}, "unknown type"),
    ({"type": "fixed", "value": 1, "step": 2}, "unknown key"),
])
def test_bad_space_entries_name_the_setting(spec, problem):
    with pytest.raises(ConfigError, match=problem) as err:
        space_from_mapping({"train": {"lr": spec}})
    assert "tune.space.train.lr" in str(err.value)


def test_a_leaf_without_type_is_an_error_naming_the_path():
    with pytest.raises(ConfigError, match="tune.space.train.lr"):
        space_from_mapping({"train": {"lr": 0.1}})


def test_translation_to_ray_tune_objects():
    from ray.tune.search.sample import Categorical, Float, Integer

    tuned = to_tune({"a.lr": Param("loguniform", low=1e-4, high=1e-2), "a.depth": Param("int", low=0, high=2),
                     "a.pool": Param("choice", values=("mean", "attention")), "a.e": Param("fixed", value=3),
                     "a.one": Param("choice", values=(5,)), "a.flat": Param("uniform", low=0.2, high=0.2)})
    assert isinstance(tuned["a.lr"], Float) and tuned["a.lr"].lower == 1e-4 and tuned["a.lr"].upper == 1e-2
    assert isinstance(tuned["a.depth"], Integer) and (tuned["a.depth"].lower, tuned["a.depth"].upper) == (0, 3)
    assert isinstance(tuned["a.pool"], Categorical) and tuned["a.pool"].categories == ["mean", "attention"]
    assert (tuned["a.e"], tuned["a.one"], tuned["a.flat"]) == (3, 5, 0.2)


def test_settings_by_path_are_checked_and_typed():
    cfg = with_settings(RecsysConfig(), {"train.grad_clip": 1.0, "train.epochs": 3.0, "model.mf.item_bias": False})
    assert cfg.train.grad_clip == 1.0 and cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert RecsysConfig().train.grad_clip is None                      # the original is untouched
    with pytest.raises(ConfigError, match="model.mf.item_bias.*type bool"):
        with_settings(RecsysConfig(), {"model.mf.item_bias": "yes"})
    with pytest.raises(ConfigError, match="train.epochs.*type int"):
        with_settings(RecsysConfig(), {"train.epochs": 2.5})
    with pytest.raises(ConfigError, match="no such setting"):
        with_settings(RecsysConfig(), {"model.mf.depth": 1})


# ------------------------------------------------------------------ every op


def test_set_pins_the_value_and_adds_an_absent_parameter():
    space, note = edit({}, "train.loss", "set", value="sampled_softmax")
    assert space["train.loss"] == Param("fixed", value="sampled_softmax") and note.status == "applied"
    assert "not searched (baseline 'softmax')" in note.before


def test_enable_and_disable_pin_booleans():
    space = {"model.two_tower.normalize": Param("choice", values=(True, False))}
    assert edit(space, "model.two_tower.normalize", "enable")[0]["model.two_tower.normalize"].value is True
    assert edit(space, "model.two_tower.normalize", "disable")[0]["model.two_tower.normalize"].value is False


def test_scale_range_moves_a_log_range_away_from_a_too_high_learning_rate():
    space = {"train.lr": Param("loguniform", low=0.1, high=1.0)}
    new, note = edit(space, "train.lr", "scale_range", factor=0.1)
    assert (new["train.lr"].low, new["train.lr"].high) == pytest.approx((0.01, 0.1))
    assert not new["train.lr"].contains(BASE["train.lr"]) and space["train.lr"].high == 1.0   # input untouched
    assert note.before == "loguniform[0.1, 1]" and note.after == "loguniform[0.01, 0.1]"


def test_scale_range_on_choices_ints_and_absent_parameters():
    new, _ = edit({"model.mf.dim": Param("choice", values=(32, 64, 128))}, "model.mf.dim", "scale_range", factor=0.5)
    assert new["model.mf.dim"].values == (16, 32, 64)
    new, _ = edit({"model.two_tower.depth": Param("int", low=1, high=3)}, "model.two_tower.depth", "scale_range",
                  factor=0.5)
    assert (new["model.two_tower.depth"].low, new["model.two_tower.depth"].high) == (0, 2)   # rounded, whole
    new, _ = edit({}, "model.mf.dim", "scale_range", factor=2.0)
    assert new["model.mf.dim"] == Param("fixed", value=128)


def test_add_shifts_ranges_and_respects_limits():
    new, _ = edit({"model.two_tower.depth": Param("int", low=0, high=2)}, "model.two_tower.depth", "add", value=1)
    assert (new["model.two_tower.depth"].low, new["model.two_tower.depth"].high) == (1, 3)
    new, _ = edit({"model.two_tower.depth": Param("int", low=0, high=2)}, "model.two_tower.depth", "add", value=-1)
    assert (new["model.two_tower.depth"].low, new["model.two_tower.depth"].high) == (0, 1)   # depth >= 0
    new, _ = edit({"model.two_tower.dropout": Param("uniform", low=0.7, high=0.85)}, "model.two_tower.dropout",
                  "add", value=0.1)
    assert new["model.two_tower.dropout"].high == pytest.approx(0.9)                        # dropout <= 0.9
    new, _ = edit({}, "model.two_tower.dropout", "add", value=0.1)
    assert new["model.two_tower.dropout"].value == pytest.approx(0.2)


def test_choice_add_extends_a_choice_a_pinned_value_and_a_range():
    new, _ = edit({"model.two_tower.use_item_id": Param("choice", values=(True,))}, "model.two_tower.use_item_id",
                  "choice_add", value=False)
    assert new["model.two_tower.use_item_id"].values == (True, False)
    new, _ = edit({}, "train.loss", "choice_add", value="bpr")
    assert new["train.loss"] == Param("choice", values=("softmax", "bpr"))
    new, _ = edit({"train.lr": Param("loguniform", low=1e-3, high=1e-2)}, "train.lr", "choice_add", value=0.05)
    assert new["train.lr"].high == 0.05


def test_remove_field_pins_the_template_without_the_field():
    new, note = edit({}, "encoder.template", "remove_field", value="genres")
    assert new["encoder.template"].value == "{title}[. {description}]" and note.status == "applied"


def test_an_edit_that_changes_nothing_is_recorded_as_skipped():
    new, note = edit({}, "model.two_tower.normalize", "disable")      # the baseline has it off already
    assert new == {} and note.status == "skipped" and note.reason == "the baseline already has this value"


def test_an_edit_that_cannot_apply_is_kept_as_skipped_with_its_reason():
    space = {"model.two_tower.pooling": Param("choice", values=("mean", "attention"))}
    new, note = edit(space, "model.two_tower.pooling", "scale_range", factor=2.0)
    assert new == space and note.status == "skipped" and "not numbers" in note.reason
    new, note = edit({}, "encoder.template", "remove_field", value="tags")
    assert note.status == "skipped" and "no optional field 'tags'" in note.reason


def _finding(code, severity, model, *edits):
    return Finding(code, severity, {"model": model}, "planted", {}, remedy("advice", *edits))


def test_remedies_steer_only_from_the_models_own_warnings_worst_first():
    lr = {"param": "train.lr", "op": "scale_range", "factor": 0.1}
    findings = [
        _finding("LOSS_PLATEAU", "warning", "mf", {"param": "train.lr", "op": "scale_range", "factor": 3.0}),
        _finding("LOSS_DIVERGENCE", "critical", "mf", lr, {"param": "train.grad_clip", "op": "set", "value": 1.0}),
        _finding("OVERFITTING", "info", "mf", {"param": "model.mf.dim", "op": "scale_range", "factor": 0.5}),
        _finding("POPULARITY_BIAS", "warning", "two_tower", lr),
        _finding("UNDERFITTING", "warning", "mf", {"param": "model.two_tower.depth", "op": "add", "value": 1}),
    ]
    assert [f.code for f in steering_findings(findings, "mf")] == ["LOSS_DIVERGENCE", "LOSS_PLATEAU", "UNDERFITTING"]
    space, notes = apply_remedies({"train.lr": Param("loguniform", low=0.1, high=1.0)}, findings, "mf",
                                  BASE.__getitem__)
    # x0.1 by the critical finding; the warning's x3 is not allowed to undo it
    assert (space["train.lr"].low, space["train.lr"].high) == pytest.approx((0.01, 0.1))
    assert space["train.grad_clip"] == Param("fixed", value=1.0) and "model.mf.dim" not in space
    assert [(n.code, n.status) for n in notes] == [("LOSS_DIVERGENCE", "applied"), ("LOSS_DIVERGENCE", "applied"),
                                                   ("LOSS_PLATEAU", "skipped"), ("UNDERFITTING", "skipped")]
    assert notes[2].reason == "already steered by LOSS_DIVERGENCE (critical)"
    assert notes[3].reason == "not a setting of mf"


def test_findings_of_equal_severity_compose():
    findings = [_finding("LOSS_PLATEAU", "warning", "mf", {"param": "train.lr", "op": "scale_range", "factor": 3.0}),
                _finding("LR_TOO_LOW", "warning", "mf", {"param": "train.lr", "op": "scale_range", "factor": 2.0})]
    space, notes = apply_remedies({"train.lr": Param("loguniform", low=1e-4, high=1e-3)}, findings, "mf",
                                  BASE.__getitem__)
    assert (space["train.lr"].low, space["train.lr"].high) == pytest.approx((6e-4, 6e-3))
    assert [n.status for n in notes] == ["applied", "applied"]
