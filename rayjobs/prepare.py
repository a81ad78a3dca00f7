"""Prepare a dataset only: ``python -m rayjobs.prepare [overrides]``."""

from __future__ import annotations

from omegaconf import DictConfig

from rayjobs._common import entry_point, run_entry
from recsys.pipeline import run_stages


@entry_point(stages=["prepare"])
def main(cfg: DictConfig) -> None:
    run_entry(lambda config: run_stages(config, ["prepare"]), cfg)


if __name__ == "__main__":
    main()
