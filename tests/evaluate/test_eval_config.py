"""The eval.* settings compose through Hydra and impossible values are named."""

from __future__ import annotations

import pytest

from rayjobs._common import compose
from recsys.errors import ConfigError
from recsys.evaluate.config import EvalConfig, check_eval_config


def test_defaults_and_overrides_compose():
    cfg = compose(["eval.k=[1,10]", "eval.memory_budget_mb=64", "eval.significance_test=wilcoxon",
                   "eval.correction=benjamini_hochberg", "eval.bootstrap_samples=200", "eval.seed=3"]).eval
    assert isinstance(cfg, EvalConfig)
    assert cfg.k == [1, 10] and cfg.memory_budget_bytes == 64 * 2**20
    assert (cfg.significance_test, cfg.correction, cfg.bootstrap_samples, cfg.seed) == \
        ("wilcoxon", "benjamini_hochberg", 200, 3)
    check_eval_config(cfg)
    check_eval_config(compose().eval)


@pytest.mark.parametrize("changes, setting", [
    ({"k": []}, "eval.k"),
    ({"k": [0, 5]}, "eval.k"),
    ({"protocol": "sampled"}, "eval.protocol"),
    ({"significance_test": "ttest"}, "eval.significance_test"),
    ({"recall_denominator": "k"}, "eval.recall_denominator"),
    ({"memory_budget_mb": 0}, "eval.memory_budget_mb"),
    ({"bootstrap_samples": 0}, "eval.bootstrap_samples"),
    ({"confidence": 1.5}, "eval.confidence"),
    ({"alpha": 0}, "eval.alpha"),
    ({"long_tail_head_fraction": -0.1}, "eval.long_tail_head_fraction"),
])
def test_impossible_values_name_the_setting(changes, setting):
    with pytest.raises(ConfigError, match=setting.replace(".", r"\.")):
        check_eval_config(EvalConfig(**changes))
