"""A diagnosis finding: what is wrong, where, how badly, the numbers that show it, and what to change.

Codes are stable UPPER_SNAKE names listed once in :data:`CODES` with their rule
family and the component at fault; each has a section in ``docs/diagnosis.md``.

>>> from recsys.diagnose.remedies import remedy
>>> f = Finding("LR_TOO_HIGH", "warning", {"model": "mf", "layer": "item_embedding.weight"},
...             "median update/weight ratio 0.3 > 0.1", {"median_update_ratio": 0.3},
...             remedy("Lower the learning rate.", {"param": "train.lr", "op": "scale_range", "factor": 0.1}))
>>> f.model, f.component, f.rank
('mf', 'training', 1)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from recsys.diagnose.remedies import Remedy
from recsys.errors import ConfigError

SEVERITIES = ("info", "warning", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class CodeInfo:
    family: str        # gradients | curves | embeddings | outcomes | features
    component: str     # training | model | embedding | evaluation | data
    meaning: str


CODES: dict[str, CodeInfo] = {
    "NAN_GRADIENTS": CodeInfo("gradients", "training", "NaN or infinite gradients"),
    "EXPLODING_GRADIENTS": CodeInfo("gradients", "training", "gradient norms spike or grow without bound"),
    "VANISHING_GRADIENTS": CodeInfo("gradients", "model", "gradients die out in early layers or over training"),
    "LR_TOO_HIGH": CodeInfo("gradients", "training", "updates are large relative to the weights"),
    "LR_TOO_LOW": CodeInfo("gradients", "training", "updates are tiny relative to the weights"),
    "DEAD_EMBEDDING_ROWS": CodeInfo("embeddings", "embedding", "embedding rows never updated or near zero"),
    "NAN_LOSS": CodeInfo("curves", "training", "the loss became NaN or infinite"),
    "LOSS_DIVERGENCE": CodeInfo("curves", "training", "the training loss rose well above its minimum"),
    "LOSS_PLATEAU": CodeInfo("curves", "training", "the training loss stalled before learning much"),
    "LOSS_OSCILLATION": CodeInfo("curves", "training", "the training loss swings up and down"),
    "OVERFITTING": CodeInfo("curves", "model", "validation metric falls while training loss still falls"),
    "UNDERFITTING": CodeInfo("curves", "model", "near the popularity baseline with a high training loss"),
    "EARLY_STOP_UNSTABLE": CodeInfo("curves", "training", "the early-stopping point is decided by noise"),
    "STOPPED_TOO_EARLY": CodeInfo("curves", "training", "the validation metric still rose when the epochs ran out"),
    "DIMENSIONAL_COLLAPSE": CodeInfo("embeddings", "embedding", "vectors use few of their dimensions"),
    "NORM_POPULARITY_COUPLING": CodeInfo("embeddings", "embedding", "item vector norms track popularity"),
    "ANISOTROPIC_TEXT_VECTORS": CodeInfo("embeddings", "embedding", "text vectors point in one direction"),
    "POPULARITY_BIAS": CodeInfo("outcomes", "model", "recommends far more popular items than users consume"),
    "SEGMENT_WEAKNESS": CodeInfo("outcomes", "model", "a user segment does much worse than the average"),
    "NOT_BEATING_POPULARITY": CodeInfo("outcomes", "model", "not significantly better than popularity"),
    "TEXT_IGNORED": CodeInfo("features", "model", "removing the text vectors barely changes the metric"),
    "TEXT_DOMINANT": CodeInfo("features", "model", "the metric rests on the text vectors alone"),
    "ID_EMBEDDINGS_UNUSED": CodeInfo("features", "model", "removing the ID embeddings barely changes the metric"),
    "TEXT_FIELD_HURTS": CodeInfo("features", "embedding", "removing a text field improves the metric"),
    "ENCODER_FORGETTING": CodeInfo("encoder", "training", "the fine-tuned encoder forgets: drift jumps, "
                                                          "validation falls"),
    "ENCODER_NOT_LEARNING": CodeInfo("encoder", "training", "trained encoder layers neither drift nor update"),
    "FINETUNE_OVERFITTING": CodeInfo("encoder", "model", "validation falls while the encoder keeps drifting"),
    "TEXT_COLLAPSE": CodeInfo("encoder", "embedding", "fine-tuning made the item text vectors alike"),
}


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: NumPy scalars become Python numbers, non-finite floats text.

    >>> jsonable({"a": np.float32(0.5), "b": (1, float("nan")), 3: np.int64(2)})
    {'a': 0.5, 'b': [1, 'nan'], '3': 2}
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        x = float(value)
        return x if math.isfinite(x) else str(x)
    if value is None or isinstance(value, str):
        return value
    return str(value)


@dataclass(frozen=True)
class Finding:
    """One diagnosis result; construction checks the code, the severity and the message.

    ``where`` holds whichever apply of: model, trial_id, layer, embedding, table,
    series, segment, split, feature. ``evidence`` is stored JSON-ready (see :func:`jsonable`).
    """

    code: str
    severity: str
    where: dict[str, Any]
    message: str
    evidence: dict[str, Any]
    remedy: Remedy

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ConfigError(f"unknown finding code {self.code!r}", hint="add it to recsys.diagnose.finding.CODES")
        if self.severity not in SEVERITY_RANK:
            raise ConfigError(f"unknown severity {self.severity!r}", hint=f"use one of {', '.join(SEVERITIES)}")
        if not self.message or "\n" in self.message:
            raise ConfigError(f"finding {self.code}: the message must be one non-empty line", hint="shorten it")
        object.__setattr__(self, "where", {k: jsonable(v) for k, v in self.where.items() if v is not None})
        object.__setattr__(self, "evidence", jsonable(self.evidence))

    @property
    def model(self) -> Optional[str]:
        return self.where.get("model")

    @property
    def component(self) -> str:
        return CODES[self.code].component

    @property
    def family(self) -> str:
        return CODES[self.code].family

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical."""
        return SEVERITY_RANK[self.severity]

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON types (remedy as ``{"advice", "edits"}``)."""
        return {"code": self.code, "severity": self.severity, "component": self.component, "where": self.where,
                "message": self.message, "evidence": self.evidence,
                "remedy": {"advice": self.remedy.advice, "edits": self.remedy.edit_dicts()}}


def severity_of(value: float, warn: float, critical: float, *, lower_is_worse: bool = False) -> Optional[str]:
    """``"critical"``, ``"warning"`` or None for ``value`` against a warning and a critical level.

    >>> severity_of(12.0, 10.0, 100.0), severity_of(1e-6, 1e-3, 1e-5, lower_is_worse=True), severity_of(5, 10, 100)
    ('warning', 'critical', None)
    """
    if lower_is_worse:
        return "critical" if value < critical else "warning" if value < warn else None
    return "critical" if value >= critical else "warning" if value >= warn else None


def fmt(x: Any) -> str:
    """A number in 3 significant digits for messages.

    >>> fmt(0.000123456), fmt(1234567.0), fmt(None)
    ('0.000123', '1.23e+06', '-')
    """
    if x is None:
        return "-"
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return str(int(x))
    return f"{float(x):.3g}"


def to_rows(findings: list[Finding], dataset: Optional[str] = None, *, round: Optional[int] = None) -> list[dict]:
    """Rows for the report's ``findings`` table (``run_id`` is added by the writer).

    ``location``, ``evidence`` and ``remedy`` are JSON text; ``remedy`` is the list of edits,
    null when there is none; ``dataset`` defaults to the finding's own ``where["dataset"]``.

    >>> from recsys.diagnose.remedies import remedy
    >>> f = Finding("LOSS_PLATEAU", "warning", {"model": "mf", "series": "train/epoch_loss"}, "stalled",
    ...             {"recent": 0.001}, remedy("Raise the learning rate."))
    >>> row = to_rows([f], "synthetic")[0]
    >>> row["model"], row["location"], row["remedy"]
    ('mf', '{"model": "mf", "series": "train/epoch_loss"}', None)
    """
    rows = []
    for f in findings:
        edits = f.remedy.edit_dicts()
        rows.append({
            "dataset": dataset if dataset is not None else f.where.get("dataset"),
            "model": f.model,
            "trial_id": f.where.get("trial_id"),
            "round": round,
            "code": f.code,
            "severity": f.severity,
            "component": f.component,
            "message": f.message,
            "location": json.dumps(f.where, sort_keys=True, allow_nan=False),
            "evidence": json.dumps(f.evidence, sort_keys=True, allow_nan=False),
            "advice": f.remedy.advice,
            "remedy": json.dumps(edits, allow_nan=False) if edits else None,
        })
    return rows
