"""Settings of the diagnosis stage (``diagnose.*``): which metric the rules read, and every threshold.

Thresholds are grouped by rule family (``diagnose.gradients.*``, ``diagnose.curves.*``,
``diagnose.embeddings.*``, ``diagnose.encoder.*``, ``diagnose.outcomes.*``, ``diagnose.features.*``). Each
rule and its thresholds are documented in ``docs/diagnosis.md`` and in the rule's
docstring. A threshold pair ``x`` / ``x_critical`` gives the warning and the
critical level of the same measure.

>>> cfg = DiagnoseConfig()
>>> cfg.val_series, cfg.gradients.spike_factor, cfg.curves.plateau_window
('val/ndcg@10', 10.0, 3)
>>> check_diagnose_config(cfg)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

from recsys.errors import ConfigError


@dataclass
class GradientThresholds:
    """``grad_stats`` rules: exploding, vanishing, NaN gradients and the update-to-weight ratio."""

    min_steps: int = 6                      # fewer logged steps per layer: growth and collapse are not judged
    end_window: int = 10                    # steps at each end whose medians are compared (growth, collapse)
    spike_window: int = 20                  # steps in the running median a spike is compared with
    spike_min_history: int = 5              # steps needed before a spike can be judged
    spike_factor: float = 10.0              # grad norm > factor x running median: spike (warning)
    spike_factor_critical: float = 100.0
    growth_factor: float = 100.0            # late / early median grad norm (warning)
    growth_factor_critical: float = 1e4
    explode_level_factor: float = 10.0      # a spike or growth counts only when the norm reached is this many
                                            # times the largest median grad norm of the unit's other layers ...
    explode_abs_norm: float = 100.0         # ... or at least this grad norm (healthy runs here: below 4)
    vanish_depth_ratio: float = 1e-3        # first / last layer of a stack, median grad norms (warning)
    vanish_depth_ratio_critical: float = 1e-5
    vanish_collapse_ratio: float = 1e-3     # late / early median grad norm of one layer (warning)
    update_ratio_high: float = 0.1          # median update/weight ratio above: LR_TOO_HIGH (healthy ~1e-3)
    update_ratio_high_critical: float = 1.0
    update_ratio_low: float = 1e-5          # below: LR_TOO_LOW
    update_ratio_low_critical: float = 1e-7


@dataclass
class CurveThresholds:
    """``curves`` rules: NaN loss, divergence, plateau, oscillation, over/underfitting, early stopping,
    stopped too early."""

    min_points: int = 4                     # fewer points in a series: it is not judged
    smooth_window: int = 3                  # trailing mean over epoch-level points
    step_smooth_window: int = 25            # trailing mean over step-level points
    start_points: int = 3                   # first step-level points whose median is the loss at the start
    divergence_rise: float = 0.5            # (final - min) / max(|min|, start - min) of the smoothed loss
    divergence_rise_critical: float = 2.0
    divergence_above_start: float = 0.01    # (final - start) / |start| of the smoothed loss: it never came down
    plateau_window: int = 3                 # epochs
    plateau_rel_improvement: float = 0.01   # relative improvement over the window below: stalled
    plateau_max_total_improvement: float = 0.05  # ... and the whole run improved less than this
    plateau_learned_ratio: float = 1.5      # metric >= this x popularity's: the model learned (info, not warning)
    oscillation_min_points: int = 8
    oscillation_rel_amplitude: float = 0.2  # median |step-to-step change| / median |loss|
    oscillation_sign_changes: float = 0.5   # share of consecutive changes that flip sign
    oscillation_trend_multiple: float = 3.0  # amplitude / |mean change per point|
    overfit_min_epochs: int = 4             # validation points needed
    overfit_val_drop: float = 0.08          # (best - now) / |best| of the smoothed validation metric (warning)
    overfit_val_drop_critical: float = 0.2
    overfit_train_fall: float = 0.01        # training loss fell at least this (relative) since the best epoch
    underfit_margin: float = 0.1            # metric <= popularity x (1 + margin)
    underfit_loss_fraction: float = 0.9     # final / start training loss at or above
    early_stop_patience: int = 3            # epochs without improvement that would stop training
    early_stop_min_points: int = 5
    early_stop_lost_gain: float = 0.25      # gain after the simulated stop, as a share of the total gain
    early_stop_noise_ratio: float = 0.5     # median |epoch-to-epoch change| / total gain of the metric
    stopped_min_points: int = 2             # validation points needed to call a run stopped too early
    stopped_window: int = 3                 # epochs back the recent gain is measured from
    stopped_recent_gain: float = 0.03       # (last - that point) / |that point|, last being the best (warning)
    stopped_recent_gain_critical: float = 0.15


@dataclass
class EmbeddingThresholds:
    """``embedding_health`` and item-norm rules; dead rows from both ``grad_stats`` and ``embedding_health``."""

    dead_share: float = 0.05                # share of rows never updated or near zero (warning)
    dead_share_critical: float = 0.5
    collapse_min_dim: int = 4               # min(dim, n_rows) below: rank is not judged
    collapse_ratio: float = 0.15            # effective_rank / min(dim, n_rows) below (warning)
    collapse_ratio_critical: float = 0.05
    coupling_min_items: int = 20
    coupling_rho: float = 0.5               # Spearman(norm, popularity) at or above (warning)
    coupling_rho_critical: float = 0.8
    text_embeddings: list[str] = field(default_factory=lambda: ["item_text"])
    anisotropy_mean_cosine: float = 0.5     # mean pairwise cosine of text vectors (warning)
    anisotropy_mean_cosine_critical: float = 0.9


@dataclass
class EncoderThresholds:
    """Rules of models with the encoder inside (``finetune``): drift, stuck blocks, collapse."""

    forget_drift: float = 0.3               # 1 - drift cosine after the first epoch (warning) ...
    forget_drift_critical: float = 0.7
    forget_val_drop: float = 0.05           # ... and (best - last) / best of the validation metric
    stuck_drift: float = 1e-4               # 1 - final drift cosine at or below ...
    stuck_update_ratio: float = 1e-6        # ... and median update/weight ratio of the encoder blocks at or below
    overfit_cka: float = 0.02               # some trained block's CKA to its pretrained output fell at least this
    overfit_drift: float = 0.01             # ... or the drift cosine did, after the best validation epoch
    collapse_spread: float = 0.3            # (1 - anisotropy) / (1 - pretrained anisotropy) at or below (warning)
    collapse_spread_critical: float = 0.1
    collapse_anisotropy: float = 0.5        # ... with a mean pairwise cosine of at least this


@dataclass
class OutcomeThresholds:
    """``metrics`` and ``comparisons`` rules: popularity bias, weak segments, losing to popularity."""

    popularity_ratio: float = 2.5           # popularity@k / test_popularity (warning)
    popularity_ratio_critical: float = 5.0
    coverage_vs_popularity: float = 2.0     # coverage@k below this multiple of the popularity model's: low
    segment_rel_gap: float = 0.3            # (all - segment) / all (warning)
    segment_rel_gap_critical: float = 0.6
    segment_min_users: int = 10
    alpha: float = 0.05                     # significance level of adjusted p-values


@dataclass
class FeatureThresholds:
    """``feature_importance`` rules; drops are relative to the metric with every feature."""

    methods: list[str] = field(default_factory=lambda: ["ablation", "permutation"])  # first present wins
    text_features: list[str] = field(default_factory=lambda: ["text", "item_text", "bert"])
    id_features: list[str] = field(default_factory=lambda: ["id", "item_id", "ids"])
    text_field_groups: list[str] = field(default_factory=lambda: ["text_field"])
    text_ignored_rel_drop: float = 0.05     # removing text costs less than this share of the metric
    text_dominant_rel_drop: float = 0.5     # removing text costs at least this share ...
    text_dominant_over_id: float = 10.0     # ... and this many times what removing ID embeddings costs
    id_unused_rel_drop: float = 0.02
    field_hurts_rel_gain: float = 0.01      # removing the field raises the metric by this share


IMPORTANCE_METHODS = ("ablation", "permutation", "grad_x_input")
IMPORTANCE_GROUPS = ("text", "item_id", "user_id", "history_length")


@dataclass
class ImportanceConfig:
    """Feature importance (``diagnose.importance.*``): what is taken away, on which users, measured how.

    Drops are measured on ``diagnose.metric@k`` (``k`` null: ``diagnose.k``) of ``split``.
    """

    enabled: bool = True
    methods: list[str] = field(default_factory=lambda: list(IMPORTANCE_METHODS))
    groups: list[str] = field(default_factory=lambda: list(IMPORTANCE_GROUPS))
    text_fields: bool = True             # re-embed the catalogue without each optional template field
    fields: list[str] = field(default_factory=list)   # fields to try; empty: every optional field of the template
    split: str = "val"
    k: Optional[int] = None
    max_users: int = 2000                # users evaluated (a seeded sample when there are more)
    permutation_repeats: int = 3         # permutations averaged per group
    history_keep: int = 3                # history_length ablation: items of each history kept (the most recent)
    grad_batches: int = 8                # grad_x_input: batches of training examples averaged
    grad_batch_size: int = 64
    bootstrap_samples: int = 1000        # paired bootstrap of the per-user drop
    confidence: float = 0.95
    seed: int = 0


@dataclass
class HealthConfig:
    """Embedding health of trained models (``diagnose.health.*``)."""

    enabled: bool = True
    sample: int = 10_000                 # rows used for rank and isotropy (seeded sample)
    dead_threshold: float = 1e-6         # rows with a smaller L2 norm are dead
    init_tolerance: float = 1e-6         # rows within this of their (possibly decayed) initial vector are dead


@dataclass
class DiagnoseConfig:
    """Whether diagnosis runs, the metric rules compare on, and the thresholds of every rule family.

    ``val_metric`` names the validation curve (default ``val/<metric>@<k>``).

    >>> DiagnoseConfig(metric="recall", k=20).val_series
    'val/recall@20'
    """

    enabled: bool = True
    metric: str = "ndcg"
    k: int = 10
    splits: list[str] = field(default_factory=lambda: ["val", "test"])   # first present is used
    baseline_model: str = "pop"
    train_loss: str = "train/loss"               # step-level training loss series
    train_loss_epoch: str = "train/epoch_loss"   # epoch-level; epoch means of train_loss when absent
    val_metric: Optional[str] = None
    disabled_rules: list[str] = field(default_factory=list)
    gradients: GradientThresholds = field(default_factory=GradientThresholds)
    curves: CurveThresholds = field(default_factory=CurveThresholds)
    embeddings: EmbeddingThresholds = field(default_factory=EmbeddingThresholds)
    encoder: EncoderThresholds = field(default_factory=EncoderThresholds)
    outcomes: OutcomeThresholds = field(default_factory=OutcomeThresholds)
    features: FeatureThresholds = field(default_factory=FeatureThresholds)
    importance: ImportanceConfig = field(default_factory=ImportanceConfig)
    health: HealthConfig = field(default_factory=HealthConfig)

    @property
    def val_series(self) -> str:
        return self.val_metric or f"val/{self.metric}@{self.k}"


FAMILIES = ("gradients", "curves", "embeddings", "encoder", "outcomes", "features")
# critical levels that lie below their warning level (a smaller value is worse)
LOWER_IS_WORSE = {"vanish_depth_ratio_critical", "update_ratio_low_critical", "collapse_ratio_critical",
                  "collapse_spread_critical"}


def _fail(setting: str, problem: str, hint: str) -> None:
    raise ConfigError(problem, setting=f"diagnose.{setting}", hint=hint)


def check_diagnose_config(cfg: DiagnoseConfig) -> None:
    """Raise :class:`ConfigError` naming the setting when a threshold is impossible.

    Counts and windows must be >= 1, ratios and factors > 0, and each critical level
    must lie beyond its warning level.

    >>> check_diagnose_config(DiagnoseConfig(gradients=GradientThresholds(spike_factor=500.0)))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'diagnose.gradients.spike_factor_critical': 100.0 is not beyond the warning level 500.0. What to do: make the critical level stricter than the warning level
    """
    if not isinstance(cfg.k, int) or cfg.k < 1:
        _fail("k", f"cut-off must be an integer >= 1, got {cfg.k!r}", "use e.g. diagnose.k=10")
    if not cfg.splits:
        _fail("splits", "no split to read metrics from", "use e.g. diagnose.splits=[val,test]")
    for family in FAMILIES:
        group = getattr(cfg, family)
        for f in fields(group):
            value = getattr(group, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if value <= 0:
                _fail(f"{family}.{f.name}", f"must be > 0, got {value!r}", "see docs/diagnosis.md for defaults")
            if f.name.endswith("_critical"):
                warn = getattr(group, f.name[: -len("_critical")])
                lower_is_worse = f.name in LOWER_IS_WORSE
                beyond = value < warn if lower_is_worse else value > warn
                if not beyond:
                    _fail(f"{family}.{f.name}", f"{value!r} is not beyond the warning level {warn!r}",
                          "make the critical level stricter than the warning level")
    _check_importance(cfg.importance)
    if cfg.health.sample < 2 or cfg.health.dead_threshold < 0 or cfg.health.init_tolerance < 0:
        _fail("health", "sample must be >= 2, dead_threshold and init_tolerance >= 0",
              "use e.g. diagnose.health.sample=10000 diagnose.health.dead_threshold=1e-6")


def _check_importance(imp: ImportanceConfig) -> None:
    for name, values, known in (("methods", imp.methods, IMPORTANCE_METHODS), ("groups", imp.groups, IMPORTANCE_GROUPS)):
        unknown = [v for v in values if v not in known]
        if unknown:
            _fail(f"importance.{name}", f"unknown value(s) {unknown}", f"use any of {', '.join(known)}")
    if imp.k is not None and (isinstance(imp.k, bool) or imp.k < 1):
        _fail("importance.k", f"cut-off must be >= 1 or null, got {imp.k!r}", "use e.g. 10, or null for diagnose.k")
    counts = ("max_users", "permutation_repeats", "history_keep", "grad_batches", "grad_batch_size",
              "bootstrap_samples")
    for name in counts:
        if getattr(imp, name) < 1:
            _fail(f"importance.{name}", f"must be >= 1, got {getattr(imp, name)!r}", "see docs/diagnosis.md")
    if not 0.0 < imp.confidence < 1.0:
        _fail("importance.confidence", f"must lie strictly between 0 and 1, got {imp.confidence!r}", "use e.g. 0.95")
