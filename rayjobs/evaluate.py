"""Prepare, embed, train and evaluate: ``python -m rayjobs.evaluate [overrides]``.

Evaluates every trained model on ``eval.splits`` (default val and test) with full
ranking over all items (``eval.protocol=uni100|pop100`` for the sampled protocols)
and writes metrics, user_metrics, recommendations and comparisons; e.g.
``python -m rayjobs.evaluate models=[pop,mf] eval.k=[10,20] eval.engine=local``.
"""

from __future__ import annotations

from omegaconf import DictConfig

from rayjobs._common import entry_point, run_entry
from recsys.pipeline import run_stages

STAGES = ["prepare", "embed", "train", "evaluate"]


@entry_point(stages=STAGES)
def main(cfg: DictConfig) -> None:
    run_entry(lambda config: run_stages(config, STAGES), cfg)


if __name__ == "__main__":
    main()
