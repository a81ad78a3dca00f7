"""Run stages in order under one report: the library side of ``rayjobs.pipeline``.

A run covers one dataset (``dataset``) or several (``datasets=[...]``, see
:mod:`recsys.data.datasets`). Stages are plain functions, registered in order:

- ``STAGES``, per-dataset stages ``stage(run: RunState) -> None``: each reads the typed
  fields earlier stages set on that dataset's :class:`~recsys.run_state.RunState`
  (:mod:`recsys.run_state`), sets its own and writes its tables
  through ``run.writer``, every row carrying the dataset's name. They run dataset
  by dataset: every stage on the first dataset, then every stage on the next.
- ``RUN_STAGES``, run-level stages ``stage(run: RunLevelState) -> None``: they run
  once, after every dataset's stages (``compare`` ranks the models of all datasets).

Each stage (per dataset) is one report transaction; ``runs.stages`` lists the
completed ones (``train:movielens`` when the run has several datasets). When the
run has diagnosed models, their per-model summary (a section per dataset, as
``diagnosis.txt`` holds it) is printed last, after the run-level stages.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

from recsys.config import RecsysConfig
from recsys.data.config import DatasetConfig
from recsys.data.datasets import check_sources, dataset_label, run_datasets
from recsys.data.prepare import prepare
from recsys.diagnose.stage import run_summary, stage_diagnose
from recsys.embed.stage import stage_embed
from recsys.evaluate.compare import stage_compare
from recsys.evaluate.crossdata import check_compare_config
from recsys.evaluate.stage import stage_evaluate
from recsys.train.stage import stage_train
from recsys.tune.stage import stage_tune
from recsys.errors import ConfigError
from recsys.models.registry import resolve_model_names
from recsys.report.writer import RunWriter, check_run_id, discard_uncommitted_transactions, new_run_id
from recsys.run_state import RunLevelState, RunState  # importable from here too
from recsys.runtime import Terminated, init_ray, stop_ray
from recsys.console import attach_run_log, stage_done, stage_started
from recsys.stage_summary import stage_summary
from recsys.storage import is_uri, join

log = logging.getLogger(__name__)


def stage_prepare(run: RunState) -> None:
    """Load, validate, filter, split and map ids; record counts and the split audit."""
    run.prepared = prepare(run.cfg.dataset, run.cfg.data, run.cfg.split).labelled(run.cfg.dataset.label)
    rows = [dict(row, dataset=run.prepared.name) for row in run.prepared.audit_rows()]
    run.writer.write("datasets", rows)
    log.info("prepared dataset %s at %s", run.prepared.name, run.prepared.path)


STAGES: dict[str, Callable[[RunState], None]] = {
    "prepare": stage_prepare,
    "embed": stage_embed,
    "train": stage_train,
    "evaluate": stage_evaluate,
    "diagnose": stage_diagnose,
    "tune": stage_tune,
}

RUN_STAGES: dict[str, Callable[[RunLevelState], None]] = {
    "compare": stage_compare,
}


def stages_through(last: str) -> list[str]:
    """The per-dataset stages in order, up to and including ``last`` (what ``rayjobs.<last>`` runs).

    >>> stages_through("train")
    ['prepare', 'embed', 'train']
    """
    _check_stages([last])
    names = list(STAGES)
    return names[: names.index(last) + 1]


def report_dir_for(cfg: RecsysConfig, run_id: str) -> Path | str:
    """``report.dir``, else ``<report.root>/<run_id>``; a URI stays a string.

    >>> str(report_dir_for(RecsysConfig(), "r1")), report_dir_for(replace(RecsysConfig(), report=replace(
    ...     RecsysConfig().report, root="s3://bucket/reports")), "r1")
    ('reports/r1', 's3://bucket/reports/r1')
    """
    if cfg.report.dir:
        return cfg.report.dir if is_uri(cfg.report.dir) else Path(cfg.report.dir)
    check_run_id(run_id, setting="report.root")
    return join(cfg.report.root, run_id) if is_uri(cfg.report.root) else Path(cfg.report.root) / run_id


def dataset_config(cfg: RecsysConfig, dataset: DatasetConfig, report_dir: Path | str, several: bool) -> RecsysConfig:
    """The config one dataset's stages see: ``dataset`` set to it; with several, checkpoints apart per dataset.

    >>> cfg = dataset_config(RecsysConfig(), DatasetConfig(label="small"), Path("reports/r1"), several=True)
    >>> cfg.dataset.label, cfg.datasets, cfg.train.checkpoint_dir
    ('small', [], 'reports/r1/checkpoints/small')
    """
    train = cfg.train
    if several:
        root = cfg.train.checkpoint_dir or join(report_dir, "checkpoints")
        train = replace(cfg.train, checkpoint_dir=join(root, dataset_label(dataset)))
    return replace(cfg, dataset=dataset, datasets=[], train=train)


def run_log_dir(report_dir: Path | str, run_id: str) -> Path:
    """Where the run's log file goes: the report directory, or a local scratch directory when that is a URI.

    >>> run_log_dir(Path("reports/r1"), "r1")
    PosixPath('reports/r1')
    """
    if is_uri(report_dir):
        import tempfile

        return Path(tempfile.gettempdir()) / "recsys-logs" / run_id
    return Path(report_dir)


def _check_stages(stages: list[str]) -> None:
    known = [*STAGES, *RUN_STAGES]
    unknown = [s for s in stages if s not in known]
    if unknown:
        raise ConfigError(f"unknown stage(s) {unknown}", hint=f"stages are {', '.join(known)}")


def run_stages(cfg: RecsysConfig, stages: list[str] | None = None) -> Path:
    """Run ``stages`` (default: all, in order) on every dataset of the run; return the run's report directory.

    Per-dataset stages run in registry order on each dataset, run-level stages after
    them. The run's ``runs`` row is written first with status ``running`` and
    finalised as ``succeeded`` or ``failed``; a failed stage publishes none of its tables.
    """
    stages = list(stages or [*STAGES, *RUN_STAGES])
    _check_stages(stages)
    from recsys.checks import check_config

    if any(":" in name for name in cfg.models):  # plugin models named by import path: their registered names
        cfg = replace(cfg, models=resolve_model_names(list(cfg.models)))
    check_config(cfg, stages)                 # every setting, and the settings that must agree, before any work
    datasets = run_datasets(cfg.dataset, cfg.datasets)
    if any(name in RUN_STAGES for name in stages):
        check_compare_config(cfg.compare, cfg.eval.k)
    several = len(cfg.datasets) > 0
    run_id = new_run_id()
    report_dir = report_dir_for(cfg, run_id)
    attach_run_log(run_log_dir(report_dir, run_id))       # Ray's own logs and every detail go there
    writer = RunWriter(report_dir, run_id=run_id, config=asdict(cfg))
    try:
        with writer:
            resources = init_ray(cfg.ray)
            writer.set_cluster({"address": cfg.ray.address or "local", "resources": resources})
            if several:
                check_sources(datasets, cfg.split)
            whole = RunLevelState(cfg=cfg, writer=writer)
            for dataset in datasets:
                name = dataset_label(dataset)
                run = whole.datasets[name] = RunState(cfg=dataset_config(cfg, dataset, report_dir, several),
                                                      writer=writer)
                for stage in (s for s in stages if s in STAGES):
                    done = f"{stage}:{name}" if several else stage
                    started = stage_started(done)
                    with writer.transaction():
                        STAGES[stage](run)
                    writer.mark_stage_done(done)
                    stage_done(done, started, stage_summary(stage, run))
            for stage in (s for s in stages if s in RUN_STAGES):
                started = stage_started(stage)
                with writer.transaction():
                    RUN_STAGES[stage](whole)
                writer.mark_stage_done(stage)
                stage_done(stage, started)
    except (Terminated, KeyboardInterrupt):
        # workers of the stopped stage may still be writing its parts: stop them, then drop what they staged
        stop_ray()
        discard_uncommitted_transactions(writer.run_dir)
        raise
    diagnosis = run_summary(whole.datasets.values(), report_dir)
    if diagnosis:
        print(diagnosis)              # one line per model of every dataset, after every stage; the full text: the file
    print(f"run {run_id} succeeded; report tables in {report_dir}")
    print(f"query them with: recsys report query \"SELECT * FROM datasets\" --runs {report_dir}")
    try:
        from recsys.report.html import write_html

        print(f"HTML report: {write_html(report_dir)}")
    except Exception as exc:  # noqa: BLE001 - the tables are committed; the page can be rebuilt later
        log.error("could not write the HTML report (%s: %s); the run's tables are complete, "
                  "rebuild it with: recsys report html %s", type(exc).__name__, exc, report_dir)
    return report_dir
