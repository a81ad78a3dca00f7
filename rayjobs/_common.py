"""What every entry point shares: config conversion and error reporting at the boundary."""

from __future__ import annotations

import logging
import signal
import sys
import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rayjobs._plugins import preload_plugins

preload_plugins(sys.argv[1:])          # before recsys.config derives the model.<name> schema from the registry

from recsys.config import RecsysConfig, register_configs  # noqa: E402
from recsys.console import LogConfig, close_run_log, run_log_path, setup_logging
from recsys.ray_output import NativeStderrFilter
from recsys.runtime import Terminated, user_error

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")

register_configs()


def to_config(cfg: DictConfig) -> RecsysConfig:
    """Turn Hydra's validated DictConfig into the plain dataclass tree the library takes.

    ``models`` entries that name a plugin (``pkg.module:Class``) become its registered name.
    """
    from recsys.models.registry import resolve_model_names

    config = OmegaConf.to_object(cfg)
    if any(":" in name for name in config.models):
        config.models = resolve_model_names(list(config.models))
    return config


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
    """Run ``main(config)`` with a console made for people (:mod:`recsys.console`).

    A RecsysError, wherever it was raised (here, in a Ray Data task, a Ray Train worker,
    an actor), ends the process with one ``error:`` line and exit code 2, its traceback
    in the run's log file only. Any other exception prints its traceback once, then
    the path of the run's log file, and exits with code 1. SIGTERM (``ray job stop``, a
    scheduler, ``kill``) ends the run as failed, the tables of the stage it stopped
    unpublished, with one ``error:`` line and exit code 143 (128 + 15); a second SIGTERM
    ends the process at once. Ctrl-C (SIGINT) does the same with exit code 130.
    """
    setup_logging(LogConfig())
    # turned into an exception, so the run is recorded as failed instead of being left 'running';
    # recsys.runtime.init_ray puts it back after ray.init replaced it
    signal.signal(signal.SIGTERM, _terminate)
    try:
        with NativeStderrFilter():                     # Ray's C++ core logs to fd 2: the run's log file
            config = to_config(cfg)
            _check(config)
            setup_logging(config.log)
            main(config)
    except Terminated as stop:
        sys.exit(report_stop(stop))
    except KeyboardInterrupt as interrupt:            # Ctrl-C: as SIGTERM, in one line
        sys.exit(report_stop(Terminated(signal.SIGINT), raised=interrupt))
    except Exception as exc:  # noqa: BLE001 - reported here, once, in the project's words
        sys.exit(report_failure(exc))
    finally:
        close_run_log()


def report_failure(exc: BaseException) -> int:
    """Tell the user why the run failed; return the exit code (2: a RecsysError, 1: anything else)."""
    found = user_error(exc)
    details = logging.getLogger("recsys.entry")
    where = run_log_path()
    if found is not None:
        details.info("run failed: %s", found, exc_info=exc)        # the full story: the log file only
        sys.stdout.flush()
        print(f"error: {found}", file=sys.stderr)
        return 2
    details.info("run failed with an unexpected error", exc_info=exc)
    sys.stdout.flush()
    # a Ray error carries the worker's traceback in its message; what it was raised during is Ray's internals
    traceback.print_exception(exc, file=sys.stderr, chain=not _from_ray(exc))
    print(f"error: unexpected {type(exc).__name__} (traceback above)"
          + (f"; the run's full log: {where}" if where else ""), file=sys.stderr)
    return 1


def report_stop(stop: Terminated, raised: BaseException | None = None) -> int:
    """One line for a run stopped by a signal; return the exit code (128 + the signal's number).

    ``raised``: the exception that stopped it, when not ``stop`` itself (Ctrl-C's KeyboardInterrupt).
    """
    logging.getLogger("recsys.entry").info("run stopped: %s", stop, exc_info=raised or stop)
    sys.stdout.flush()
    where = run_log_path()
    print(f"error: {stop}; it is recorded as failed" + (f" (log: {where})" if where else ""), file=sys.stderr)
    return 128 + stop.signum


def _from_ray(exc: BaseException) -> bool:
    try:
        from ray.exceptions import RayError
    except ImportError:
        return False
    return isinstance(exc, RayError)


def _terminate(signum, frame) -> None:
    signal.signal(signum, signal.SIG_DFL)            # a second one ends the process at once
    raise Terminated(signum)


def entry_point(task=None, *, stages: list[str] | None = None):
    """``@hydra.main`` of the project's config, with the command line checked before Hydra sees it.

    A misspelt or unknown setting (``+`` or not, at any depth), a value of the wrong type,
    a setting out of range or settings that disagree for the entry point's ``stages``
    (default: every stage) end the process with one ``error:`` line naming the setting and
    exit code 2, before anything runs (:mod:`rayjobs._overrides`, :func:`recsys.checks.check_config`).
    Called with a DictConfig (tests), the decorated function runs ``task`` directly.
    """
    if task is None:
        return lambda function: entry_point(function, stages=stages)
    import functools

    import hydra

    hydra_main = hydra.main(config_path=CONFIG_DIR, config_name="config", version_base=None)(task)

    @functools.wraps(task)
    def main(cfg: DictConfig | None = None) -> None:
        if cfg is not None:
            return task(cfg)
        from rayjobs._overrides import check_command_line
        from recsys.errors import RecsysError

        try:
            check_command_line(sys.argv[1:], stages)
        except RecsysError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        return hydra_main()

    return main


def _check(config: RecsysConfig) -> None:
    """Every setting's range, and the baselines named on the command line, before any stage (ConfigError)."""
    from rayjobs._overrides import given_settings
    from recsys.checks import check_config

    check_config(config, stages=(), explicit=given_settings(sys.argv[1:]))
