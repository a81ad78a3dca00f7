"""Prepare (cached) then embed item text: ``python -m rayjobs.embed [overrides]``.

Examples::

    python -m rayjobs.embed                                   # synthetic data, MiniLM, local Ray
    python -m rayjobs.embed dataset=movielens dataset.path=../shared/datasets/ml-latest-small
    python -m rayjobs.embed encoder=bert-base encoder.path=/models/bert-base-uncased
"""

from __future__ import annotations

from omegaconf import DictConfig

from rayjobs._common import entry_point, run_entry
from recsys.pipeline import run_stages


@entry_point(stages=["prepare", "embed"])
def main(cfg: DictConfig) -> None:
    run_entry(lambda config: run_stages(config, ["prepare", "embed"]), cfg)


if __name__ == "__main__":
    main()
