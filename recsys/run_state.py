"""What the stages of one run hand each other: small dataclasses with named fields.

Each per-dataset stage reads the fields earlier stages set on its :class:`RunState`
and sets its own:

========== ============ =========================================================
stage      sets         type
========== ============ =========================================================
prepare    ``prepared``   :class:`~recsys.data.prepared.PreparedDataset`
embed      ``embedding``  :class:`Embedding` (vectors file + the embed result)
train      ``models``     ``{name: TrainedModelRecord}`` (``best_model.pt`` + status)
evaluate   ``evaluation`` :class:`Evaluation` (context, rows per model or list, ...)
diagnose   ``diagnosis``  :class:`~recsys.diagnose.stage.DiagnoseResult`
tune       ``tune``       ``{mode: SearchResult}``
========== ============ =========================================================

A stage that needs a field an earlier stage did not set asks :meth:`RunState.require`,
which raises a :class:`~recsys.errors.ConfigError` naming the stage to run first.
``Evaluation.rows`` is keyed by the name of a model *or* of a recommendation list that
came from elsewhere; only names in ``models`` have a model file, so stages that need the
model itself (diagnose, tune) iterate ``models``, never ``evaluation.rows``.

This module imports nothing from the stages (their types only under ``TYPE_CHECKING``),
so every stage can import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from recsys.errors import ConfigError

if TYPE_CHECKING:                                  # pragma: no cover - types only
    import numpy as np

    from recsys.config import RecsysConfig
    from recsys.data.prepared import PreparedDataset
    from recsys.diagnose.stage import DiagnoseResult
    from recsys.embed.catalogue import EmbedResult
    from recsys.evaluate.context import EvalContext
    from recsys.evaluate.rows import MetricRows
    from recsys.report.writer import RunWriter
    from recsys.tune.rounds import SearchResult

# The per-dataset stages in the order a run runs them (``recsys.pipeline.STAGES`` has the same order).
STAGE_ORDER = ("prepare", "embed", "train", "evaluate", "diagnose", "tune")

# field of RunState -> (the stage that sets it, what a stage that lacks it is missing)
PRODUCERS: dict[str, tuple[str, str]] = {
    "prepared": ("prepare", "a prepared dataset"),
    "embedding": ("embed", "the item text vectors"),
    "models": ("train", "trained models"),
    "evaluation": ("evaluate", "the evaluate stage's results"),
    "diagnosis": ("diagnose", "the diagnosis of the trained models"),
    "tune": ("tune", "the tune stage's results"),
}


@dataclass
class Embedding:
    """The embed stage's output: the Parquet file of item vectors and, when embedded in this run, its result."""

    vectors_path: Path | str                      # item_id, embedding, is_fallback; a URI on shared storage
    result: Optional["EmbedResult"] = None


@dataclass
class TrainedModelRecord:
    """One trained model: its ``best_model.pt`` and how training went (None: not known, e.g. an earlier run's file).

    >>> TrainedModelRecord(Path("ck/mf/best_model.pt"), status="completed", best_epoch=1, best_val=0.25).status
    'completed'
    """

    path: Path | str                              # best_model.pt (a URI on shared storage)
    status: Optional[str] = None                  # completed | diverged | ...
    where: Optional[str] = None                   # where a diverged run stopped
    best_epoch: Optional[int] = None
    best_val: Optional[float] = None              # the best validation metric; None when never validated
    epochs: Optional[int] = None
    steps: Optional[int] = None
    seconds: Optional[float] = None               # wall time of its training in this run


@dataclass
class Evaluation:
    """The evaluate stage's results, for diagnose and tune.

    ``rows`` maps a model's or an external list's name to ``{split: MetricRows}``; ``segments``
    maps a split to ``{segment: user_idx}``; ``item_groups`` maps a group to its item mask.
    """

    context: "EvalContext"
    rows: dict[str, dict[str, "MetricRows"]] = field(default_factory=dict)
    segments: dict[str, dict[str, "np.ndarray"]] = field(default_factory=dict)
    item_groups: dict[str, "np.ndarray"] = field(default_factory=dict)


@dataclass
class RunState:
    """What one dataset of a run carries from stage to stage (``cfg.dataset`` is that dataset).

    >>> run = RunState(cfg=None, writer=None)
    >>> run.require("models", "evaluate")
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'stages': the evaluate stage needs trained models. What to do: run the train stage before evaluate (stages: prepare, embed, train, evaluate)
    """

    cfg: "RecsysConfig"
    writer: "RunWriter"
    prepared: Optional["PreparedDataset"] = None
    embedding: Optional[Embedding] = None
    models: dict[str, TrainedModelRecord] = field(default_factory=dict)
    evaluation: Optional[Evaluation] = None
    diagnosis: Optional["DiagnoseResult"] = None
    tune: Optional[dict[str, "SearchResult"]] = None

    def require(self, name: str, stage: str) -> Any:
        """Field ``name``, set by an earlier stage; a :class:`ConfigError` naming that stage when it is unset or empty."""
        if name not in PRODUCERS:
            raise ValueError(f"RunState has no stage output {name!r}; known: {', '.join(PRODUCERS)}")
        value = getattr(self, name)
        if value is None or (isinstance(value, dict) and not value):
            raise missing(name, stage)
        return value

    def model_paths(self) -> dict[str, Path | str]:
        """``{name: best_model.pt}`` of the trained models.

        >>> RunState(cfg=None, writer=None, models={"mf": TrainedModelRecord("m.pt")}).model_paths()
        {'mf': 'm.pt'}
        """
        return {name: record.path for name, record in self.models.items()}


def missing(name: str, stage: str) -> ConfigError:
    """The error of ``stage`` lacking field ``name``: what it needs and which stage to run before it.

    >>> print(missing("evaluation", "tune"))
    setting 'stages': the tune stage needs the evaluate stage's results. What to do: run the evaluate stage before tune (stages: prepare, embed, train, evaluate, diagnose, tune)
    """
    producer, what = PRODUCERS[name]
    upto = STAGE_ORDER[: STAGE_ORDER.index(stage) + 1] if stage in STAGE_ORDER else (*STAGE_ORDER, stage)
    return ConfigError(f"the {stage} stage needs {what}", setting="stages",
                       hint=f"run the {producer} stage before {stage} (stages: {', '.join(upto)})")


@dataclass
class RunLevelState:
    """What run-level stages see: the whole config, the writer and each dataset's state by its name."""

    cfg: "RecsysConfig"
    writer: "RunWriter"
    datasets: dict[str, RunState] = field(default_factory=dict)
