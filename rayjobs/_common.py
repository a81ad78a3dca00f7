"""What every entry point shares: config conversion and error reporting at the boundary."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from recsys.config import RecsysConfig, register_configs
from recsys.errors import RecsysError

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")

register_configs()


def to_config(cfg: DictConfig) -> RecsysConfig:
    """Turn Hydra's validated DictConfig into the plain dataclass tree the library takes."""
    return OmegaConf.to_object(cfg)


def compose(overrides: list[str] | None = None) -> RecsysConfig:
    """Compose the config as the entry points would, without a command line (tests, notebooks).

    >>> compose(["split.protocol=leave_last"]).split.protocol
    'leave_last'
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return to_config(hydra_compose(config_name="config", overrides=overrides or []))


def run_entry(main, cfg: DictConfig) -> None:
    """Run ``main(config)``; a RecsysError ends the process with its message, not a traceback."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # `ray job stop` and schedulers end a job with SIGTERM: turn it into an exception so the
    # run is recorded as failed instead of being left 'running'.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        main(to_config(cfg))
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)
