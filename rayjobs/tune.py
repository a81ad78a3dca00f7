"""Every stage up to and including the diagnosis-driven search: ``python -m rayjobs.tune [overrides]``.

Prepares, embeds, trains, evaluates and diagnoses the models of ``models=[...]``, then
searches ``tune.model`` (``tune.mode=directed``: the findings edit the space; ``undirected``:
random search over the default space with the same budget; ``both``), e.g.
``python -m rayjobs.tune models=[pop,two_tower] tune.rounds=2 tune.trials=8 tune.mode=both``.
"""

from __future__ import annotations

from omegaconf import DictConfig

from rayjobs._common import entry_point, run_entry
from recsys.pipeline import run_stages, stages_through


def stages_through_tune() -> list[str]:
    """The pipeline's per-dataset stages in order, up to and including ``tune``.

    >>> stages_through_tune()[-2:]
    ['diagnose', 'tune']
    """
    return stages_through("tune")


@entry_point(stages=stages_through("tune"))
def main(cfg: DictConfig) -> None:
    run_entry(lambda config: run_stages(config, stages_through_tune()), cfg)


if __name__ == "__main__":
    main()
