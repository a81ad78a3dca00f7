"""Prepare, embed, train, evaluate and diagnose: ``python -m rayjobs.diagnose [overrides]``.

Runs every stage up to ``diagnose``, which measures feature importance and the
embedding health of each trained model, runs the diagnosis rules, writes
``feature_importance``, ``embedding_health`` and ``findings``, and prints the
per-model summary at the end (also stored as ``diagnosis.txt`` in the run directory, a section per
dataset); e.g.
``python -m rayjobs.diagnose models=[pop,mf,two_tower] diagnose.importance.max_users=500``.
"""

from __future__ import annotations

from omegaconf import DictConfig

from rayjobs._common import entry_point, run_entry
from recsys.pipeline import run_stages, stages_through


def stages_through_diagnose() -> list[str]:
    """The pipeline's per-dataset stages in order, up to and including ``diagnose``.

    >>> stages_through_diagnose()[-1]
    'diagnose'
    """
    return stages_through("diagnose")


@entry_point(stages=stages_through("diagnose"))
def main(cfg: DictConfig) -> None:
    run_entry(lambda config: run_stages(config, stages_through_diagnose()), cfg)


if __name__ == "__main__":
    main()
