"""Settings of the evaluation stage (``eval.*``).

The metric definitions these settings choose between are documented in
:mod:`recsys.evaluate.metrics`, :mod:`recsys.evaluate.beyond` and
:mod:`recsys.evaluate.significance`.

>>> check_eval_config(EvalConfig())
>>> EvalConfig().memory_budget_bytes
16777216
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from recsys.errors import ConfigError
from recsys.evaluate.external_files import ExternalListConfig, check_external_lists
from recsys.evaluate.history import QUERY_HISTORIES

PROTOCOLS = ("full", "uni100", "pop100")
SIGNIFICANCE_TESTS = ("paired_t", "wilcoxon", "bootstrap")
CORRECTIONS = ("holm", "benjamini_hochberg", "none")
RECALL_DENOMINATORS = ("relevant", "min_k")
ENGINES = ("ray", "local")
SPLITS = ("val", "test")


@dataclass
class EvalConfig:
    """Cut-offs, ranking protocol, what is stored, and how results are summarised and compared.

    >>> EvalConfig().k
    [5, 10, 20]
    """

    k: list[int] = field(default_factory=lambda: [5, 10, 20])
    protocol: str = "full"              # full | uni100 | pop100
    save_topk: bool = True
    memory_budget_mb: int = 16          # scores held at once: batch x n_items x 4 bytes (raise it on a GPU)
    auc: bool = True                    # AUC over the full ranking (one extra pass per held-out item)
    recall_denominator: str = "relevant"  # relevant: hits / |relevant| | min_k: hits / min(k, |relevant|)
    long_tail_head_fraction: float = 0.2  # share of the catalogue (most popular first) that is the head
    bootstrap_samples: int = 1000       # resamples of users for confidence intervals
    confidence: float = 0.95            # confidence level of the intervals
    seed: int = 0                       # seed of the bootstrap resampling
    significance_test: str = "paired_t"  # paired_t | wilcoxon | bootstrap
    correction: str = "holm"            # holm | benjamini_hochberg | none
    alpha: float = 0.05                 # level at which an adjusted p-value counts as significant
    splits: list[str] = field(default_factory=lambda: ["val", "test"])   # splits evaluated, in order
    engine: str = "ray"                 # ray: user shards over Ray Data | local: this process
    baseline: Optional[str] = "pop"     # every model is compared with it (when evaluated), plus every other pair
    cold_start_max: int = 5             # users with at most this many training interactions are cold-start
    max_attribute_values: int = 20      # attribute segments: the most frequent values of a column, at most this many
    external: list[ExternalListConfig] = field(default_factory=list)  # lists from outside: {name, path, format, split}
    query_history: str = "train_val"    # train_val: test queries read train then val (history.py) | train

    @property
    def memory_budget_bytes(self) -> int:
        return int(self.memory_budget_mb) * 2**20


def _one_of(value, choices: tuple[str, ...], setting: str) -> None:
    if value not in choices:
        raise ConfigError(f"unknown value {value!r}", setting=setting, hint=f"use one of {', '.join(choices)}")


def check_eval_config(cfg: EvalConfig) -> None:
    """Raise :class:`ConfigError` naming the setting when ``cfg`` asks for something impossible.

    >>> check_eval_config(EvalConfig(correction="bonferoni"))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'eval.correction': unknown value 'bonferoni'. What to do: use one of holm, benjamini_hochberg, none
    """
    ks = list(cfg.k)
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ConfigError(f"cut-offs must be a non-empty list of integers >= 1, got {ks!r}", setting="eval.k",
                          hint="use e.g. eval.k=[5,10,20]")
    _one_of(cfg.protocol, PROTOCOLS, "eval.protocol")
    _one_of(cfg.significance_test, SIGNIFICANCE_TESTS, "eval.significance_test")
    _one_of(cfg.correction, CORRECTIONS, "eval.correction")
    _one_of(cfg.recall_denominator, RECALL_DENOMINATORS, "eval.recall_denominator")
    _one_of(cfg.engine, ENGINES, "eval.engine")
    _one_of(cfg.query_history, QUERY_HISTORIES, "eval.query_history")
    splits = list(cfg.splits)
    if not splits or any(s not in SPLITS for s in splits) or len(set(splits)) != len(splits):
        raise ConfigError(f"splits must be distinct names among {', '.join(SPLITS)}, got {splits!r}",
                          setting="eval.splits", hint="use e.g. eval.splits=[val,test]")
    checks = [
        ("eval.memory_budget_mb", cfg.memory_budget_mb >= 1, "use e.g. 256"),
        ("eval.bootstrap_samples", cfg.bootstrap_samples >= 1, "use e.g. 1000"),
        ("eval.confidence", 0.0 < cfg.confidence < 1.0, "use e.g. 0.95"),
        ("eval.alpha", 0.0 < cfg.alpha < 1.0, "use e.g. 0.05"),
        ("eval.long_tail_head_fraction", 0.0 <= cfg.long_tail_head_fraction <= 1.0, "use e.g. 0.2"),
        ("eval.cold_start_max", cfg.cold_start_max >= 0, "use e.g. 5"),
        ("eval.max_attribute_values", cfg.max_attribute_values >= 1, "use e.g. 20"),
    ]
    for setting, ok, hint in checks:
        if not ok:
            value = getattr(cfg, setting.split(".")[1])
            raise ConfigError(f"value {value!r} is out of range", setting=setting, hint=hint)
    check_external_lists(cfg.external)
