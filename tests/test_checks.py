"""check_config: every numeric setting has a range, settings that must agree are cross-checked for the stages
that run, and what the project ships (defaults, every config-group choice) passes."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace
from pathlib import Path

import pytest

from rayjobs._common import CONFIG_DIR, compose
from recsys.checks import ALL_STAGES, check_config
from recsys.config import RecsysConfig
from recsys.errors import ConfigError
from recsys.tune.settings import with_settings


def numeric_settings(node=None, prefix: str = "") -> list[tuple[str, object]]:
    """Every int/float leaf of the settings tree (built-in sections only), with its default."""
    node = RecsysConfig() if node is None else node
    found = []
    for f in dataclasses.fields(node):
        value, path = getattr(node, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            if prefix == "model." and not type(value).__module__.startswith("recsys.models."):
                continue
            found += numeric_settings(value, f"{path}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found.append((path, value))
    return found


NUMBERS = numeric_settings()


def test_the_tree_has_the_numbers_we_expect():
    paths = {path for path, _ in NUMBERS}
    assert {"train.epochs", "tune.trials", "tune.rounds", "model.mf.dim", "eval.confidence",
            "dataset.synthetic.n_users", "diagnose.k", "train.val_k"} <= paths
    assert len(paths) > 100


@pytest.mark.parametrize("path,default", NUMBERS, ids=[p for p, _ in NUMBERS])
def test_every_numeric_setting_refuses_an_absurd_value_naming_itself(path, default):
    cfg = RecsysConfig()
    check_config(cfg)                                               # the default passes
    bad_values = [-10**9] if isinstance(default, int) else [-1e9, float("nan")]
    for bad in bad_values:
        with pytest.raises(ConfigError) as info:
            check_config(with_settings(cfg, {path: bad}))
        assert info.value.setting is not None
        named = info.value.setting
        assert path == named or path.startswith(named + ".") or named.startswith(path.rsplit(".", 1)[0]), \
            (path, named, str(info.value))


@pytest.mark.parametrize("group", sorted(p.name for p in Path(CONFIG_DIR).iterdir() if p.is_dir()))
def test_every_shipped_config_choice_passes(group):
    for file in sorted((Path(CONFIG_DIR) / group).glob("*.yaml")):
        overrides = [f"{group}={file.stem}"]
        if group == "dataset" and file.stem != "synthetic":
            overrides.append("dataset.path=somewhere")
        check_config(compose(overrides))


def _with(**sections) -> RecsysConfig:
    cfg = RecsysConfig()
    changes = {}
    for name, values in sections.items():
        current = getattr(cfg, name)
        changes[name] = replace(current, **values) if dataclasses.is_dataclass(current) else values
    return replace(cfg, **changes)


# (config changes, the setting named, the stages that need the agreement)
DISAGREEMENTS = [
    (dict(eval={"k": [5, 20]}), "train.val_k", ["prepare", "train", "evaluate"]),
    (dict(eval={"k": [10, 20]}, diagnose={"k": 5, "val_metric": "val/ndcg@10"}), "diagnose.k",
     ["prepare", "train", "evaluate", "diagnose"]),
    (dict(diagnose={"metric": "recall"}), "diagnose.k", ["prepare", "train", "diagnose"]),
    (dict(diagnose={"val_metric": "val/ndcg@20"}), "diagnose.val_metric", ["prepare", "train", "diagnose"]),
    (dict(eval={"splits": ["val"]}, diagnose={"splits": ["test"]}), "diagnose.splits",
     ["prepare", "train", "evaluate", "diagnose"]),
    (dict(models=["pop", "mf"], tune={"model": "sasrec"}), "tune.model", ["train", "tune"]),
    (dict(diagnose={"enabled": False}), "tune.mode", ["train", "diagnose", "tune"]),
    (dict(compare={"metrics": ["ndcg@15"]}), "compare.metrics", ["compare"]),
    (dict(eval={"splits": ["val"]}), "compare.split", ["evaluate", "compare"]),
    (dict(ray={"num_cpus": 2}, train={"num_workers": 3, "cpus_per_worker": 1.0}), "train.num_workers", ["train"]),
    (dict(ray={"num_cpus": 2}, tune={"cpus_per_trial": 4.0}), "tune.cpus_per_trial", ["train", "diagnose", "tune"]),
]


@pytest.mark.parametrize("changes,setting,stages", DISAGREEMENTS, ids=[d[1] for d in DISAGREEMENTS])
def test_settings_that_disagree_are_refused_only_where_their_stages_run(changes, setting, stages):
    cfg = _with(**changes)
    with pytest.raises(ConfigError) as info:
        check_config(cfg, stages)
    assert info.value.setting == setting, str(info.value)
    with pytest.raises(ConfigError):
        check_config(cfg)                                           # every stage
    check_config(cfg, ["prepare"])                                  # preparing alone needs none of them


def test_a_baseline_named_on_the_command_line_must_be_trained():
    cfg = _with(models=["pop", "mf"], eval={"baseline": "two_tower"})
    check_config(cfg)                                               # the default baseline may be left out
    with pytest.raises(ConfigError, match="eval.baseline"):
        check_config(cfg, explicit={"eval.baseline"})


def test_a_threshold_outside_the_rating_scale_is_refused():
    cfg = _with(data={"implicit_threshold": 6.0}, dataset={"rating_scale": [1.0, 5.0]})
    with pytest.raises(ConfigError, match="data.implicit_threshold"):
        check_config(cfg, ["prepare"])
    check_config(_with(data={"implicit_threshold": 4.0}, dataset={"rating_scale": [1.0, 5.0]}), ["prepare"])


def test_only_popularity_needs_no_epochs_agreement_and_no_val_k():
    cfg = _with(models=["pop"], eval={"k": [5, 20]}, diagnose={"k": 5})
    check_config(cfg, ["prepare", "train", "evaluate", "diagnose"])  # nothing trained: no validation curve
    assert cfg.train.lr is None or math.isfinite(cfg.train.lr)


def test_every_stage_is_known():
    from recsys.pipeline import RUN_STAGES, STAGES

    assert set(ALL_STAGES) == {*STAGES, *RUN_STAGES}


def test_the_timestamp_units_are_those_validation_converts():
    from recsys.data.checks import TIMESTAMP_UNITS, check_settings

    for unit in ("auto", *TIMESTAMP_UNITS):
        check_config(_with(dataset={"timestamp_unit": unit}), ["prepare"])
        check_settings(_with(dataset={"timestamp_unit": unit}).dataset)
    assert {"s", "ms", "us", "ns"} <= set(TIMESTAMP_UNITS)
    with pytest.raises(ConfigError, match="dataset.timestamp_unit.*auto, s, ms, us, ns"):
        check_config(_with(dataset={"timestamp_unit": "seconds"}), ["prepare"])
