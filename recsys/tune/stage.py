"""The pipeline's ``tune`` stage: the diagnosis-driven search of ``tune.model``, measured against where it started.

It runs after ``diagnose`` (the baseline's findings steer round 0) and writes:

- ``trials``: every trial of every search, with its round, sampled configuration, the space
  edits that shaped its round, per-epoch validation NDCG, status and stop reason;
- ``metrics`` and ``user_metrics`` of the retrained results, as models ``<model>:directed``
  and ``<model>:undirected``;
- ``comparisons`` on every split: baseline ``<model>`` vs each result, and
  ``<model>:undirected`` vs ``<model>:directed`` (paired tests over users);
- ``findings`` of each round's retrained model (``model`` = ``<model>:directed``, ``round`` set).

It prints a before/after summary. See :mod:`recsys.tune.rounds` for the order of work.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import polars as pl

from recsys.diagnose.finding import to_rows
from recsys.errors import ConfigError
from recsys.run_state import Evaluation, RunState
from recsys.tune._ray import TrialOutcome, run_search
from recsys.tune.config import TuneConfig, check_tune_config, searched_model
from recsys.tune.edits import EditNote
from recsys.tune.rounds import Retrained, SearchResult, Steps, directed_search, undirected_search
from recsys.tune.settings import get_setting
from recsys.tune.space import Space, for_model, space_from_mapping
from recsys.tune.trial import TEMPLATE, TrialContext, with_trial_settings
from recsys.models.registry import get_spec

log = logging.getLogger(__name__)


def variant(model: str, mode: str) -> str:
    """The name a search's result is reported under.

    >>> variant("two_tower", "directed")
    'two_tower:directed'
    """
    return f"{model}:{mode}"


@dataclass
class FullTraining:
    """A configuration trained with the full budget and evaluated (``findings``: None until diagnosed)."""

    origin: str                      # "the baseline", "directed round 0 trial ..."
    path: Path
    rows: dict[str, Any]
    val_ndcg: float
    findings: Optional[list] = None
    trained: Any = None              # the TrainedModel (telemetry for a re-diagnosis); None for the baseline


@dataclass
class TunedModel:
    """A retrained trial: where its weights are and its evaluation rows per split."""

    path: Path
    rows: dict[str, Any]
    findings_rows: list[dict]


def _check(run: RunState, cfg: TuneConfig) -> None:
    """The run has what searching ``cfg.model`` needs (the model trained, evaluated, diagnosed when directed).

    Only trained models (``run.models``) can be searched: a recommendation list evaluated next to
    them has no model to retrain.
    """
    models = run.models
    if run.prepared is None or cfg.model not in models:
        raise ConfigError(f"the tune stage searches {cfg.model!r}, which this run did not train", setting="tune.model",
                          hint=f"add it to models=[...] (trained: {', '.join(models) or 'none'}), "
                               "or set tune.model to one of them")
    run.require("evaluation", "tune")
    if cfg.mode in ("directed", "both") and run.diagnosis is None:
        raise ConfigError("a directed search needs the diagnosis of the baseline", setting="tune.mode",
                          hint="run the diagnose stage first (diagnose.enabled=true), or use tune.mode=undirected")


def _templates(space: Space) -> list[str]:
    param = space.get(TEMPLATE)
    if param is None:
        return []
    values = param.values if param.type == "choice" else (param.value,)
    return [v for v in values if isinstance(v, str)]


class TuneRun:
    """The stage's state and steps for one dataset's run (see :func:`stage_tune`)."""

    def __init__(self, run: RunState, item_text: Optional[np.ndarray], cfg: TuneConfig):
        from recsys.train.data import TrainingData
        from recsys.train.stage import checkpoint_root

        from recsys.embed.tokens import with_run_token_cache
        from recsys.train.config import for_model

        self.run, self.tcfg = run, cfg
        self.model = self.tcfg.model
        self.cfg = with_run_token_cache(run.cfg, run.prepared, self.model)   # finetune: the catalogue's token states
        self.cfg = replace(self.cfg, train=for_model(self.cfg.train, self.model))   # train.lr null: the model's own
        self.dataset = run.prepared.name
        self.data = TrainingData.from_prepared(run.prepared)
        self.item_text = item_text
        self.root = checkpoint_root(run).resolve() / "tune"
        self.evaluation: Evaluation = run.require("evaluation", "tune")
        epochs = min(cfg.epochs, self.cfg.train.epochs) if cfg.epochs else self.cfg.train.epochs
        self.context = TrialContext(self.cfg, self.model, self.data, {None: item_text}, epochs=max(1, epochs),
                                    threads=max(1, int(self.tcfg.cpus_per_trial)),
                                    plugin=get_spec(self.model).target)
        self.trained: dict[str, FullTraining] = {self.training_key({}): self._baseline_training()}

    # ------------------------------------------------------------ inputs

    def baseline_value(self, path: str) -> Any:
        if path == TEMPLATE:
            from recsys.embed.config import template_for

            return template_for(self.cfg.encoder, self.dataset)
        return get_setting(self.cfg, path)

    def prepare_templates(self, space: Space) -> None:
        """Embed the catalogue with every template the space may pick (the embed cache makes repeats free)."""
        from recsys.embed.catalogue import embed_catalogue, load_item_vectors
        from recsys.embed.stage import cache_root

        for template in _templates(space):
            if template in self.context.vectors:
                continue
            if self.item_text is None:
                raise ConfigError("the search space changes encoder.template but the run has no item vectors",
                                  setting="tune.space.encoder.template", hint="run the embed stage before tune")
            result = embed_catalogue(self.run.prepared, replace(self.cfg.encoder, template=template),
                                     cache_root(self.cfg))
            self.context.vectors[template] = load_item_vectors(result.path, self.run.prepared.item_map())

    # ------------------------------------------------------------ steps

    def search(self, space: Space, mode: str, budget: int, seed: int, name: str, start: dict,
               origin: str) -> list[TrialOutcome]:
        self.prepare_templates(space)
        return run_search(space, self.context, self.tcfg, mode=mode, budget=budget, seed=seed,
                          storage=self.root, name=name, start=start, start_label=origin)

    def training_key(self, config: dict) -> str:
        """What a full training of ``config`` depends on: the resolved training and model settings and the
        item text. Training is seeded (``train.seed``), so equal keys train equal models."""
        cfg = with_trial_settings(self.cfg, config)
        template = config.get(TEMPLATE)
        if template == self.baseline_value(TEMPLATE):
            template = None                                  # the run's own item vectors
        return json.dumps({"train": asdict(cfg.train), "model": asdict(cfg.model.for_model(self.model)),
                           "template": template}, sort_keys=True, default=str)

    def retrain(self, trial: TrialOutcome, mode: str, index: int) -> Retrained:
        """Train the trial's configuration with the baseline's budget, evaluate it, and diagnose it.

        A configuration trained in full before (the baseline's own settings, or an earlier round's
        pick) is not trained again: its model, evaluation and findings are reused, as a retrain
        with the same seed would reproduce them.
        """
        key = self.training_key(trial.config)
        known = self.trained.get(key)
        if known is None:
            known = self._train_in_full(trial, mode, index)
            self.trained[key] = known
        else:
            log.info("tune: %s trial %s has the settings of %s, trained in full before: reused, not retrained",
                     mode, trial.trial_id, known.origin)
        findings = []
        if mode == "directed" and self.cfg.diagnose.enabled:
            if known.findings is None:
                from recsys.train.checkpoint import load_model
                from recsys.tune.rediagnose import rediagnose

                known.findings = rediagnose(self, load_model(known.path), known.trained, known.rows)
            findings = known.findings
        finding_rows = [dict(row, model=variant(self.model, mode), round=index, trial_id=trial.trial_id)
                        for row in to_rows(findings, self.dataset)]
        return Retrained(known.val_ndcg, findings, TunedModel(known.path, known.rows, finding_rows))

    def _train_in_full(self, trial: TrialOutcome, mode: str, index: int) -> "FullTraining":
        from recsys.evaluate.stage import evaluate_models
        from recsys.train.checkpoint import load_model
        from recsys.train.stage import train_model

        cfg = with_trial_settings(self.cfg, trial.config)
        vectors = self.context.vectors[trial.config.get(TEMPLATE)]
        out_dir = self.root / f"{self.model}-{mode}-r{index}"
        log.info("tune: retraining %s trial %s (%s) for up to %d epochs", mode, trial.trial_id,
                 json.dumps(trial.config, sort_keys=True, default=str), cfg.train.epochs)
        trained = train_model(self.model, cfg.model.for_model(self.model), self.data, vectors, cfg.train, out_dir)
        rows = evaluate_models({self.model: load_model(trained.path)}, self.evaluation.context,
                               self.cfg.eval)[self.model]
        best = trained.state.best_metric
        return FullTraining(f"{mode} round {index} trial {trial.trial_id}", trained.path, rows,
                            best if math.isfinite(best) else float("-inf"), trained=trained)

    def _baseline_training(self) -> "FullTraining":
        """The baseline as the train, evaluate and diagnose stages left it."""
        record = self.run.models[self.model]
        best = record.best_val
        diagnosis = self.run.diagnosis
        findings = None if diagnosis is None else [f for f in diagnosis.findings if f.where.get("model") == self.model]
        return FullTraining("the baseline", Path(record.path),
                            self.evaluation.rows[self.model], float("-inf") if best is None else float(best),
                            findings=findings)

    # ------------------------------------------------------------ rows

    def trial_rows(self, result: SearchResult) -> list[dict]:
        out = []
        for rnd in result.rounds:
            applied = [n for n in rnd.notes if n.status == "applied"]
            codes = ",".join(dict.fromkeys(n.code for n in applied)) or None
            for t in rnd.trials:
                selected = rnd.selected is not None and t.trial_id == rnd.selected.trial_id
                metrics = {"best_val_ndcg": t.objective, "last_val_ndcg": t.val_curve[-1] if t.val_curve else None,
                           "epochs": t.epochs}
                if selected and rnd.retrained is not None:
                    metrics["retrained_val_ndcg"] = rnd.retrained.val_ndcg
                    metrics.update(summary_on_test_split(rnd.retrained.payload.rows, self.cfg.eval.k))
                out.append({
                    "dataset": self.dataset, "model": self.model, "round": rnd.index, "trial_id": t.trial_id,
                    "mode": result.mode, "config": json.dumps(t.config, sort_keys=True, default=str),
                    "metrics": json.dumps(_finite(metrics), sort_keys=True), "objective": t.objective,
                    "status": t.status, "stopped_at": t.epochs if t.status == "stopped" else None,
                    "origin_remedy": codes, "remedies": json.dumps([n.to_dict() for n in rnd.notes]),
                    "val_curve": json.dumps([round(x, 6) for x in t.val_curve]), "stop_reason": t.stop_reason,
                    "error": t.error, "model_variant": variant(self.model, result.mode), "selected": selected,
                    "seeded_from": t.seeded_from,
                })
        return out


def _finite(values: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}


def summary_on_test_split(rows: dict, ks) -> dict:
    """Test NDCG and recall at k=10 (or the largest k) of one model's evaluation rows, by name."""
    k = 10 if 10 in ks else max(ks)
    result = rows.get("test")
    if result is None:
        return {}
    return {f"test_{metric}@{k}": mean_on_test_split(rows, f"{metric}@{k}") for metric in ("ndcg", "recall")
            if f"{metric}@{k}" in result.values}


def mean_on_test_split(rows: dict, column: str) -> Optional[float]:
    """Mean of one per-user metric column over the evaluated users of the test split; None when absent or empty."""
    result = rows.get("test")
    if result is None or column not in result.values:
        return None
    values = np.asarray(result.values[column], dtype=float)[result.evaluated]
    return float(values.mean()) if values.size else None


def model_space(space: dict, model: str) -> dict:
    """``tune.space``, plus the model's own ``search_space`` (its :class:`ModelSpec`) where the space has none.

    A plugin brings the ranges of its settings; ``tune.space.model.<name>`` entries, when given, win.
    """
    own = get_spec(model).search_space
    models = dict(space.get("model") or {})
    if not own or models.get(model):
        return space
    return {**space, "model": {**models, model: own}}


def stage_tune(run: RunState) -> None:
    """Search ``tune.model`` as ``tune.mode`` says; write trials, metrics, comparisons, findings; print a summary."""
    cfg: TuneConfig = run.cfg.tune
    if not cfg.enabled:
        log.info("tuning is disabled (tune.enabled=false)")
        return
    check_tune_config(cfg)
    model = searched_model(cfg, list(run.models))
    if model is None:
        log.info("tune: no trained model to search (only pop); set tune.model or add a model to models=[...]")
        return
    cfg = replace(cfg, model=model)
    _check(run, cfg)
    from recsys.train.stage import load_item_text
    from recsys.tune.report import brief_text, summary_text, write_results

    state = TuneRun(run, load_item_text(run), cfg)
    default = for_model(space_from_mapping(model_space(cfg.space, state.model)), state.model)
    if not default:
        raise ConfigError(f"the search space has no parameter for {state.model}", setting="tune.space",
                          hint=f"add tune.space.train.* or tune.space.model.{state.model}.* entries")
    steps = Steps(search=state.search, retrain=state.retrain)
    results: dict[str, SearchResult] = {}
    if cfg.mode in ("directed", "both"):
        findings = run.diagnosis.findings
        results["directed"] = directed_search(default, findings, state.model, cfg, state.baseline_value, steps,
                                              state.dataset)
    if cfg.mode in ("undirected", "both"):
        results["undirected"] = undirected_search(default, cfg, state.baseline_value, steps, state.dataset)
    for result in results.values():
        run.writer.write("trials", state.trial_rows(result))
    comparisons = write_results(state, results)
    run.tune = results
    log.info("%s", summary_text(state, results, comparisons))        # the whole account: the run's log file
    print(brief_text(state, results, comparisons))
