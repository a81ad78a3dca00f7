"""docs/diagnosis.md documents every code, rule, threshold (with its default) and op; the config composes."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from recsys.diagnose.config import (FAMILIES, DiagnoseConfig, GradientThresholds, OutcomeThresholds,
                                    check_diagnose_config)
from recsys.diagnose.engine import RULES
from recsys.diagnose.finding import CODES
from recsys.diagnose.remedies import OPS
from recsys.errors import ConfigError

DOC = (Path(__file__).resolve().parents[2] / "docs" / "diagnosis.md").read_text(encoding="utf-8")
DEFAULTS = DiagnoseConfig()


def test_every_code_has_its_own_section():
    sections = re.findall(r"^### (\w+)$", DOC, flags=re.M)
    assert sorted(sections) == sorted(CODES)


def test_every_rule_is_named():
    for name in RULES:
        assert f"`{name}`" in DOC, name


def test_every_op_is_in_the_table():
    rows = re.findall(r"^\| `(\w+)` \| .* \| .* \|$", DOC.split("## Remedies", 1)[1].split("\n## ", 1)[0], re.M)
    assert rows == list(OPS)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_threshold_is_documented_with_its_default(family):
    documented = {}
    for name, value in re.findall(rf"`{family}\.(\w+)` = (\[[^\]]*\]|-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)", DOC):
        documented.setdefault(name, value)
    group = getattr(DEFAULTS, family)
    for f in fields(group):
        assert f"`{family}.{f.name}`" in DOC, f"{family}.{f.name} is not documented"
        default = getattr(group, f.name)
        if f.name in documented:
            shown = json.loads(documented[f.name])
            assert shown == pytest.approx(default) if not isinstance(default, list) else shown == default, f.name
    assert set(documented) <= {f.name for f in fields(group)}


def test_defaults_pass_the_check_and_impossible_thresholds_are_named():
    check_diagnose_config(DEFAULTS)
    with pytest.raises(ConfigError, match="diagnose.gradients.update_ratio_low_critical"):
        check_diagnose_config(DiagnoseConfig(gradients=GradientThresholds(update_ratio_low_critical=1e-3)))
    with pytest.raises(ConfigError, match="diagnose.outcomes.alpha': must be > 0"):
        check_diagnose_config(DiagnoseConfig(outcomes=OutcomeThresholds(alpha=0.0)))
    with pytest.raises(ConfigError, match="diagnose.k"):
        check_diagnose_config(DiagnoseConfig(k=0))


def test_hydra_composes_the_thresholds_and_overrides_reach_them():
    from rayjobs._common import compose

    cfg = compose(["diagnose.gradients.spike_factor=20", "diagnose.curves.plateau_window=5",
                   "diagnose.features.text_features=[bert]", "diagnose.disabled_rules=[loss_plateau]"])
    assert isinstance(cfg.diagnose, DiagnoseConfig)
    assert cfg.diagnose.gradients.spike_factor == 20.0 and cfg.diagnose.curves.plateau_window == 5
    assert cfg.diagnose.features.text_features == ["bert"] and cfg.diagnose.disabled_rules == ["loss_plateau"]
    assert cfg.diagnose.val_series == "val/ndcg@10"
    check_diagnose_config(cfg.diagnose)
