"""Every stage that exists, in order: ``python -m rayjobs.pipeline [overrides]``."""

from __future__ import annotations

from omegaconf import DictConfig

from rayjobs._common import entry_point, run_entry
from recsys.pipeline import run_stages


@entry_point
def main(cfg: DictConfig) -> None:
    run_entry(lambda config: run_stages(config), cfg)


if __name__ == "__main__":
    main()
