"""The pipeline's ``diagnose`` stage: feature importance, model embedding health, findings and a summary.

For every trained model (``run.models``, name -> ``best_model.pt`` and training status) the stage

1. measures feature importance (:mod:`recsys.diagnose.importance`,
   :mod:`recsys.diagnose.attribution`, and per text field :mod:`recsys.diagnose.text_fields`)
   on ``diagnose.importance.split`` and writes ``feature_importance``;
2. measures the health of its item vectors and ID tables
   (:mod:`recsys.diagnose.model_health`) and writes ``embedding_health``;
3. runs every rule (:func:`recsys.diagnose.engine.run_rules`) over this run's tables
   published so far plus the rows of step 1 and 2 and the ``item_norms`` side table,
   writes ``findings`` and stores the per-model summary as this dataset's section of
   ``diagnosis.txt`` in the run directory (one section per dataset of the run).

Everything is written inside the stage's transaction, so a failed stage publishes
nothing. Every model except ``diagnose.baseline_model`` is judged; the baseline's
metrics stay in as the reference. The pipeline prints every dataset's section at the
very end of the run (:func:`run_summary`, after run-level stages such as ``compare``);
:func:`diagnose_run` does the same on a finished run and prints its section itself.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import polars as pl
import torch

from recsys.data.prepared import PreparedDataset
from recsys.diagnose.attribution import grad_x_input_rows
from recsys.diagnose.config import DiagnoseConfig, check_diagnose_config
from recsys.diagnose.engine import RULES, run_rules
from recsys.diagnose.finding import Finding, to_rows
from recsys.diagnose.importance import EvalData, feature_tensors, importance_rows, text_field_rows
from recsys.diagnose.inputs import DiagnosisInputs
from recsys.diagnose.model_health import item_norms, model_health_rows
from recsys.diagnose.remedies import applicable
from recsys.diagnose.summary import brief, summarize
from recsys.diagnose.text_fields import FieldVectors, field_vectors
from recsys.errors import ConfigError, DataError
from recsys.evaluate.config import EvalConfig
from recsys.evaluate.context import EvalContext
from recsys.evaluate.history import query_model
from recsys.models.base import ModelInputs, Recommender
from recsys.models.registry import build_model
from recsys.report.schema import schema_for
from recsys.run_state import RunState, TrainedModelRecord
from recsys.storage import join

log = logging.getLogger(__name__)

SUMMARY_FILE = "diagnosis.txt"
SECTION_HEADER = "== dataset {} =="
JUDGED_TABLES = ("curves", "grad_stats", "embedding_health", "feature_importance", "item_norms")
READ_TABLES = ("curves", "grad_stats", "embedding_health", "metrics", "comparisons", "feature_importance",
               "external_lists")


@dataclass
class DiagnoseResult:
    """What the stage computed and wrote."""

    feature_importance: list[dict] = field(default_factory=list)
    embedding_health: list[dict] = field(default_factory=list)
    item_norms: Optional[pl.DataFrame] = None
    findings: list[Finding] = field(default_factory=list)
    summary: str = ""
    dataset: str = ""
    models: list[str] = field(default_factory=list)      # the judged models (those without findings too)

    @property
    def section(self) -> str:
        """The summary under its dataset's header, as ``diagnosis.txt`` holds it."""
        return summary_section(self.dataset, self.summary)

    @property
    def brief_section(self) -> str:
        """The section in one line per model (:func:`recsys.diagnose.summary.brief`), for the console."""
        return summary_section(self.dataset, brief(self.findings, models=self.models))


# ---------------------------------------------------------------- inputs


def eval_data(prepared: PreparedDataset, cfg: DiagnoseConfig, context: Any = None,
              eval_cfg: Optional[EvalConfig] = None) -> EvalData:
    """Users, held-out items and masks of ``diagnose.importance.split`` (val masks train; test train and val).

    ``context`` is the evaluate stage's :class:`~recsys.evaluate.context.EvalContext`; without one it
    is read from ``prepared``. Importance always ranks the full catalogue.
    """
    imp = cfg.importance
    if imp.split not in ("val", "test"):
        raise ConfigError(f"feature importance is measured on val or test, got {imp.split!r}",
                          setting="diagnose.importance.split", hint="use val or test")
    if context is None:
        context = EvalContext.from_prepared(prepared, None, eval_cfg or EvalConfig())
    relevant, seen = context.masks(imp.split)
    data = EvalData(relevant, seen, cfg.metric, imp.k or cfg.k, split=imp.split)
    return data.sample(imp.max_users, imp.seed)


def initial_model(model: Recommender, seed: int) -> Recommender:
    """``model`` as training initialised it (``torch.manual_seed(train.seed)`` then build), caller's RNG untouched.

    >>> from recsys.models.base import tiny_inputs
    >>> from recsys.train.data import TrainingData
    >>> from recsys.train.stage import new_model
    >>> from recsys.models.mf import MFConfig
    >>> trained = new_model("mf", MFConfig(dim=4), TrainingData.from_arrays([0, 1], [0, 1], n_users=2, n_items=2), None, 7)
    >>> torch.equal(initial_model(trained, 7).user_embedding.weight, trained.user_embedding.weight)
    True
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(model.name, model.config, ModelInputs.placeholder(model.spec))


# ---------------------------------------------------------------- measuring one model


def model_importance(model: Recommender, data: EvalData, cfg: DiagnoseConfig,
                     fields: Optional[FieldVectors] = None, ranked: Optional[Recommender] = None) -> list[dict]:
    """Every ``feature_importance`` row of one model (without run, dataset and model).

    ``ranked`` is the model as it answers queries on ``data.split`` (:func:`recsys.evaluate.history.query_model`;
    default ``model``): the ranking methods score with it, gradient x input trains with ``model``.
    """
    imp = cfg.importance
    if not feature_tensors(model):
        return []
    ranked = model if ranked is None else ranked
    stats = {"n_samples": imp.bootstrap_samples, "confidence": imp.confidence, "seed": imp.seed}
    base = data.per_user(ranked)
    rows = importance_rows(ranked, data, methods=imp.methods, groups=imp.groups, repeats=imp.permutation_repeats,
                           history_keep=imp.history_keep, base=base, **stats)
    if fields is not None and fields.vectors:
        rows += text_field_rows(ranked, data, fields.vectors, base=base, **stats)
    if "grad_x_input" in imp.methods:
        rows += grad_x_input_rows(model, batches=imp.grad_batches, batch_size=imp.grad_batch_size, seed=imp.seed,
                                  groups=imp.groups, n_samples=imp.bootstrap_samples, confidence=imp.confidence)
    return rows


def diagnose_models(models: Mapping[str, Recommender], prepared: PreparedDataset, cfg: DiagnoseConfig, *,
                    train_seed: int = 0, fields: Optional[FieldVectors] = None, context: Any = None,
                    eval_cfg: Optional[EvalConfig] = None) -> DiagnoseResult:
    """Feature importance, embedding health and item norms of ``models`` (no rules, nothing written)."""
    dataset = prepared.name
    result = DiagnoseResult()
    eval_cfg = eval_cfg or EvalConfig()
    if cfg.importance.enabled and context is None:
        context = EvalContext.from_prepared(prepared, None, eval_cfg)
    data = eval_data(prepared, cfg, context, eval_cfg) if cfg.importance.enabled else None
    item_ids = prepared.item_map().sort("item_idx")["item_id"].to_list()
    norms = []
    for name, model in models.items():
        if name == cfg.baseline_model:
            continue
        if data is not None:
            log.info("feature importance of %s on %s users", name, len(data.users))
            ranked = query_model(model, context, data.split, eval_cfg.query_history)
            rows = model_importance(model, data, cfg, fields, ranked=ranked)
            result.feature_importance += [dict(row, dataset=dataset, model=name) for row in rows]
        if cfg.health.enabled:
            h = cfg.health
            rows = model_health_rows(model, init=initial_model(model, train_seed), sample=h.sample,
                                     dead_threshold=h.dead_threshold, init_tolerance=h.init_tolerance)
            result.embedding_health += [dict(row, dataset=dataset, model=name) for row in rows]
            norms.append(item_norms(model, item_ids).with_columns(pl.lit(name).alias("model")))
    result.item_norms = pl.concat(norms) if norms else None
    return result


# ---------------------------------------------------------------- judging


def rows_frame(table: str, rows: list[dict]) -> pl.DataFrame:
    """``rows`` as a frame with report table ``table``'s columns (keys it lacks are dropped, absent ones null).

    >>> rows_frame("curves", [{"model": "mf", "step": 0, "name": "train/loss", "value": 1.5, "extra": 1}]).shape
    (1, 8)
    """
    schema = dict(pl.from_arrow(schema_for(table).empty_table()).schema)
    return pl.DataFrame([{k: v for k, v in r.items() if k in schema} for r in rows], schema=schema,
                        strict=False) if rows else pl.DataFrame(schema=schema)


def _jsonable_details(rows: list[dict]) -> list[dict]:
    return [dict(r, details=json.dumps(r["details"], sort_keys=True, default=str))
            if isinstance(r.get("details"), dict) else r for r in rows]


def judge(tables: Mapping[str, pl.DataFrame], result: DiagnoseResult, cfg: DiagnoseConfig) -> list[Finding]:
    """Run the rules over ``tables`` plus ``result``'s rows; the baseline model is not judged.

    >>> row = {"dataset": "d", "split": "val", "feature": "text", "method": "ablation", "metric": "ndcg", "k": 10,
    ...        "baseline_value": 0.2, "drop": 0.001}
    >>> rows = [dict(row, model="two_tower"), dict(row, model="pop")]
    >>> [(f.model, f.code) for f in judge({}, DiagnoseResult(feature_importance=rows), DiagnoseConfig())]
    [('two_tower', 'TEXT_IGNORED')]
    """
    merged = dict(tables)
    for table, rows in (("feature_importance", result.feature_importance),
                        ("embedding_health", _jsonable_details(result.embedding_health))):
        new = rows_frame(table, rows)
        old = merged.get(table)
        merged[table] = pl.concat([old.select(new.columns), new], how="vertical_relaxed") \
            if old is not None and old.height else new
    if result.item_norms is not None:
        merged["item_norms"] = result.item_norms
    for table in JUDGED_TABLES:
        frame = merged.get(table)
        if frame is not None and frame.height and "model" in frame.columns:
            merged[table] = frame.filter(pl.col("model").is_null() | (pl.col("model") != cfg.baseline_model))
    return run_rules(DiagnosisInputs.from_tables(without_lists(merged, cfg.baseline_model)), cfg).findings


def without_lists(tables: Mapping[str, pl.DataFrame], baseline: Optional[str] = None) -> dict[str, pl.DataFrame]:
    """``tables`` without the rows of recommendation lists from elsewhere (the ``external_lists`` names).

    A list has metrics but no model: diagnosis judges models only (the ``baseline`` keeps its
    rows as the reference, whatever it is).

    >>> metrics = pl.DataFrame({"model": ["mf", "toppop"], "value": [0.2, 0.1]})
    >>> lists = pl.DataFrame({"model": ["toppop"]})
    >>> without_lists({"metrics": metrics, "external_lists": lists})["metrics"]["model"].to_list()
    ['mf']
    """
    found = tables.get("external_lists")
    names = set() if found is None or not found.height else set(found["model"].to_list()) - {baseline}
    out = dict(tables)
    if not names:
        return out
    listed = list(names)
    for table, frame in tables.items():
        if frame is None or not frame.height:
            continue
        if table == "comparisons":
            out[table] = frame.filter(~pl.col("baseline").is_in(listed) & ~pl.col("candidate").is_in(listed))
        elif "model" in frame.columns and table != "external_lists":
            out[table] = frame.filter(pl.col("model").is_null() | ~pl.col("model").is_in(listed))
    return out


def model_setting_paths() -> set[str]:
    """Every ``model.<name>.<param>`` path the registered models have.

    >>> "model.two_tower.depth" in model_setting_paths(), "model.mf.use_text" in model_setting_paths()
    (True, False)
    """
    from dataclasses import fields

    from recsys.models.registry import ModelSettings

    settings = ModelSettings()
    return {f"model.{section.name}.{param.name}" for section in fields(settings)
            for param in fields(getattr(settings, section.name))}


def without_missing_settings(findings: list[Finding]) -> list[Finding]:
    """The findings with remedy edits of model settings that do not exist dropped (mf has no ``use_text``).

    Rules propose model edits by name for any model; only the model knows which it has.
    """
    known = model_setting_paths()
    out = []
    for finding in findings:
        kept = [e.param for e in finding.remedy.edits if not e.param.startswith("model.") or e.param in known]
        out.append(dataclass_replace(finding, remedy=applicable(finding.remedy, kept)))
    return out


def published_tables(run_dir: str | Path, dataset: Optional[str] = None) -> dict[str, pl.DataFrame]:
    """The diagnosis tables this run has published so far (committed stages of a running run included).

    With ``dataset``, only its rows (and rows without a dataset): a run over several
    datasets diagnoses each on its own.
    """
    from recsys.report.reader import scan_tables

    frames = scan_tables(str(run_dir))
    ours = pl.lit(True) if dataset is None else pl.col("dataset").is_null() | (pl.col("dataset") == dataset)
    return {name: frames[name].filter(ours).collect() for name in READ_TABLES}


def summary_section(dataset: str, summary: str) -> str:
    """One dataset's section of ``diagnosis.txt``: a header line, then the summary.

    >>> print(summary_section("movielens", "diagnosis: no findings"))
    == dataset movielens ==
    diagnosis: no findings
    """
    return SECTION_HEADER.format(dataset) + "\n" + summary.rstrip("\n")


def merge_sections(text: str, dataset: str, section: str) -> str:
    """``text`` (a ``diagnosis.txt``) with ``dataset``'s section replaced, or appended when it has none.

    >>> both = merge_sections(summary_section("a", "old"), "b", summary_section("b", "new"))
    >>> print(merge_sections(both, "a", summary_section("a", "newer")))
    == dataset a ==
    newer
    <BLANKLINE>
    == dataset b ==
    new
    """
    sections: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        match = re.fullmatch(r"== dataset (\S+) ==", line)
        if match:
            name = match.group(1)
            sections[name] = line
        elif name is not None:
            sections[name] += "\n" + line
    sections[dataset] = section
    return "\n\n".join(part.rstrip("\n") for part in sections.values())


def finish(writer, result: DiagnoseResult, tables: Mapping[str, pl.DataFrame], cfg: DiagnoseConfig,
           dataset: str, models: list[str]) -> DiagnoseResult:
    """Judge, then write feature_importance, embedding_health, findings and the summary file through ``writer``.

    The summary becomes ``dataset``'s section of ``diagnosis.txt``; sections other datasets of
    the run published before are kept. Nothing is printed here (see :func:`run_summary`).
    """
    result.findings = without_missing_settings(judge(tables, result, cfg))
    judged = [m for m in models if m != cfg.baseline_model]
    result.summary = summarize(result.findings, models=judged)
    result.dataset, result.models = dataset, judged
    writer.write("feature_importance", result.feature_importance)
    writer.write("embedding_health", _jsonable_details(result.embedding_health))
    writer.write("findings", to_rows(result.findings, dataset))
    published = Path(writer.run_dir) / SUMMARY_FILE
    before = published.read_text(encoding="utf-8") if published.exists() else ""
    writer.write_text(SUMMARY_FILE, merge_sections(before, dataset, result.section) + "\n")
    return result


def run_summary(states: Iterable[RunState], location: str | Path | None = None) -> str:
    """The diagnosis of the datasets diagnosed in this run, one line per model, for the end of the pipeline.

    ``states`` are the run's per-dataset :class:`~recsys.run_state.RunState` objects; those
    without a diagnosis add nothing (empty text when none has one). With the run's
    ``location``, a last line points at the full text (``diagnosis.txt``: every finding's
    message, remedy and edits).

    >>> state = RunState(cfg=None, writer=None, diagnosis=DiagnoseResult(dataset="a", models=["mf"]))
    >>> print(run_summary([state, RunState(cfg=None, writer=None)], "runs/r1"))
    == dataset a ==
    diagnosis: 0 findings (0 critical, 0 warning, 0 info) in 1 model
      mf: no findings
    the full diagnosis (messages, remedies, edits): runs/r1/diagnosis.txt
    """
    results = [state.diagnosis for state in states if state.diagnosis is not None]
    if not results:
        return ""
    text = "\n\n".join(result.brief_section for result in results)
    if location is not None:
        text += f"\nthe full diagnosis (messages, remedies, edits): {join(location, SUMMARY_FILE)}"
    return text


# ---------------------------------------------------------------- the stage


def load_models(paths: Mapping[str, str | Path]) -> dict[str, Recommender]:
    from recsys.train.checkpoint import load_model

    return {name: load_model(path) for name, path in paths.items()}


def text_field_vectors(run_cfg, prepared: PreparedDataset, models: Mapping[str, Recommender]) -> Optional[FieldVectors]:
    """Vectors without each text field, when asked for and some judged model reads text."""
    cfg = run_cfg.diagnose
    if not (cfg.importance.enabled and cfg.importance.text_fields):
        return None
    if not any("text" in feature_tensors(m) for name, m in models.items() if name != cfg.baseline_model):
        return None
    from recsys.embed.stage import cache_root

    return field_vectors(prepared, run_cfg.encoder, cache_root(run_cfg), cfg.importance.fields)


def stage_diagnose(run: RunState) -> None:
    """Diagnose every model the train stage left in ``run.models`` (see the module doc).

    Names evaluated without a model (recommendation lists from elsewhere) are not in
    ``run.models`` and are not diagnosed.
    """
    cfg = run.cfg.diagnose
    if not cfg.enabled:
        log.info("diagnosis is disabled (diagnose.enabled=false)")
        return
    check_diagnose_config(cfg)
    run.require("prepared", "diagnose")
    if not run.models and run.evaluation is not None and run.evaluation.rows:
        log.info("diagnose: no trained model (%s evaluated from elsewhere: lists are not diagnosed)",
                 ", ".join(run.evaluation.rows))
        return
    run.require("models", "diagnose")
    paths = run.model_paths()
    models = load_models(paths)
    context = run.evaluation.context if run.evaluation is not None else None
    fields = text_field_vectors(run.cfg, run.prepared, models)
    result = diagnose_models(models, run.prepared, cfg, train_seed=run.cfg.train.seed, fields=fields,
                             context=context, eval_cfg=run.cfg.eval)
    tables = published_tables(run.writer.run_dir, run.prepared.name)
    run.diagnosis = finish(run.writer, result, tables, cfg, run.prepared.name, list(paths))


def diagnose_run(report_dir: str | Path, cfg, *, models: Optional[Mapping[str, str | Path]] = None,
                 prepared: Optional[PreparedDataset] = None) -> DiagnoseResult:
    """Run the diagnose stage on a finished run's directory (``cfg``: the run's :class:`RecsysConfig`).

    The prepared dataset is found again from ``cfg`` (the preparation cache), the models at
    ``<checkpoint root>/<model>/best_model.pt``; the stage's tables are added to the run, which
    lists ``diagnose`` among its stages afterwards.
    """
    from recsys.report.reader import list_runs
    from recsys.report.writer import RunWriter
    from recsys.train.stage import checkpoint_root

    report_dir = Path(report_dir)
    check_diagnose_config(cfg.diagnose)
    unknown = sorted(set(cfg.diagnose.disabled_rules) - set(RULES))
    if unknown:
        raise ConfigError(f"unknown rule(s) {', '.join(unknown)}", setting="diagnose.disabled_rules",
                          hint=f"use names from: {', '.join(RULES)}")
    embeds = cfg.diagnose.importance.enabled and cfg.diagnose.importance.text_fields
    if (embeds and cfg.encoder.engine == "ray") or (prepared is None and cfg.data.engine == "ray"):
        from recsys.runtime import init_ray

        init_ray(cfg.ray)              # as run_stages does: sized by ray.*, not by whatever Ray would pick
    if prepared is None:
        from recsys.data.prepare import prepare

        prepared = prepare(cfg.dataset, cfg.data, cfg.split)
    runs = list_runs(str(report_dir))
    if runs.height != 1:
        raise DataError(f"expected one run here, found {runs.height}", file=str(report_dir),
                        hint="pass the report.dir of one run that trained models")
    if "diagnose" in runs["stages"][0].split(","):
        raise ConfigError("this run was diagnosed already; its findings would be written twice",
                          setting="report.dir", hint="diagnose a run without a diagnose stage, or start a new run")
    with RunWriter(report_dir, resume=True) as writer:
        run = RunState(cfg=cfg, writer=writer, prepared=prepared)
        if models is None:
            root = checkpoint_root(run)
            models = {name: root / name / "best_model.pt" for name in cfg.models
                      if (root / name / "best_model.pt").exists()}
        run.models = {name: TrainedModelRecord(path) for name, path in models.items()}
        with writer.transaction():
            stage_diagnose(run)
        writer.mark_stage_done("diagnose")
    result = run.diagnosis if run.diagnosis is not None else DiagnoseResult()
    if result.dataset:
        print(result.section)
    return result
