"""Run stages in order under one report: the library side of ``rayjobs.pipeline``.

Each stage is a plain function ``stage(run) -> None`` that reads what earlier
stages left in :class:`RunState` and writes its tables through ``run.writer``.
Later stages (embed, train, evaluate, diagnose, tune) register here in order.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from recsys.config import RecsysConfig
from recsys.data.prepare import prepare
from recsys.data.prepared import PreparedDataset
from recsys.diagnose.stage import stage_diagnose
from recsys.embed.stage import stage_embed
from recsys.evaluate.stage import stage_evaluate
from recsys.train.stage import stage_train
from recsys.errors import ConfigError
from recsys.report.writer import RunWriter, new_run_id
from recsys.runtime import init_ray

log = logging.getLogger(__name__)


@dataclass
class RunState:
    """What one run carries from stage to stage."""

    cfg: RecsysConfig
    writer: RunWriter
    prepared: PreparedDataset | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def stage_prepare(run: RunState) -> None:
    """Load, validate, filter, split and map ids; record counts and the split audit."""
    run.prepared = prepare(run.cfg.dataset, run.cfg.data, run.cfg.split)
    rows = [dict(row, dataset=run.prepared.name) for row in run.prepared.audit_rows()]
    run.writer.write("datasets", rows)
    log.info("prepared dataset %s at %s", run.prepared.name, run.prepared.path)


STAGES: dict[str, Callable[[RunState], None]] = {
    "prepare": stage_prepare,
    "embed": stage_embed,
    "train": stage_train,
    "evaluate": stage_evaluate,
    "diagnose": stage_diagnose,
}


def report_dir_for(cfg: RecsysConfig, run_id: str) -> Path:
    return Path(cfg.report.dir) if cfg.report.dir else Path(cfg.report.root) / run_id


def run_stages(cfg: RecsysConfig, stages: list[str] | None = None) -> Path:
    """Run ``stages`` (default: all, in order) and return the run's report directory.

    The run's ``runs`` row is written first with status ``running`` and finalised as
    ``succeeded`` or ``failed``; a failed stage publishes none of its tables.
    """
    stages = list(stages or STAGES)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {unknown}", hint=f"stages are {', '.join(STAGES)}")
    run_id = new_run_id()
    report_dir = report_dir_for(cfg, run_id)
    config = asdict(cfg)
    with RunWriter(report_dir, run_id=run_id, config=config) as writer:
        resources = init_ray(cfg.ray)
        writer.set_cluster({"address": cfg.ray.address or "local", "resources": resources})
        run = RunState(cfg=cfg, writer=writer)
        for name in stages:
            log.info("stage %s: start", name)
            with writer.transaction():
                STAGES[name](run)
            writer.mark_stage_done(name)
            log.info("stage %s: done", name)
    print(f"run {run_id} succeeded; report tables in {report_dir}")
    print(f"query them with: recsys report query \"SELECT * FROM datasets\" --runs {report_dir}")
    return report_dir
