"""Prepare, embed and train: ``python -m rayjobs.train [overrides]``.

Trains ``models=[...]`` (default: pop, mf, content, two_tower, sasrec) with Ray Train
(``train.engine=ray``, ``train.num_workers``) and writes their curves and
grad_stats; e.g. ``python -m rayjobs.train models=[mf,two_tower] train.epochs=5``.
"""

from __future__ import annotations

from omegaconf import DictConfig

from rayjobs._common import entry_point, run_entry
from recsys.pipeline import run_stages

STAGES = ["prepare", "embed", "train"]


@entry_point(stages=STAGES)
def main(cfg: DictConfig) -> None:
    run_entry(lambda config: run_stages(config, STAGES), cfg)


if __name__ == "__main__":
    main()
