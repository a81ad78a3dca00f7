"""Prepare a dataset only: ``python -m rayjobs.prepare [overrides]``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from rayjobs._common import CONFIG_DIR, run_entry
from recsys.pipeline import run_stages


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    run_entry(lambda config: run_stages(config, ["prepare"]), cfg)


if __name__ == "__main__":
    main()
