"""Where a run executes: a local Ray started with explicit resources, or an existing cluster."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional

from recsys.errors import RecsysError


@dataclass
class RayConfig:
    """``ray.*`` settings.

    ``address`` None starts a local single-node Ray with ``num_cpus`` (default: all
    cores of this machine), its dashboard (when ``include_dashboard``) bound to
    ``127.0.0.1`` only. The dashboard is on by default: it serves Ray's state API, which
    Ray Train's placement-group cleaner polls every second (without it, every training
    run logs a warning a second and leaked placement groups are never removed); inside a Ray job (``ray job submit`` sets ``RAY_ADDRESS``)
    None joins that job's cluster instead. ``auto`` joins the cluster this machine
    belongs to; any other value (``ray://host:10001``, ``host:6379``) is passed to
    ``ray.init``.

    >>> RayConfig().address is None
    True
    """

    address: Optional[str] = None
    num_cpus: Optional[int] = None
    num_gpus: Optional[int] = None
    object_store_memory: Optional[int] = None   # bytes, local Ray only
    include_dashboard: bool = True     # the state API (Ray Train's cleaner needs it), on 127.0.0.1
    log_to_driver: bool = True
    runtime_env: dict[str, str] = field(default_factory=dict)  # env vars for workers


LOCAL_DASHBOARD_HOST = "127.0.0.1"   # a local Ray never listens beyond this machine


def effective_address(cfg: RayConfig, environ: dict | None = None) -> str | None:
    """The address ``init_ray`` joins: ``ray.address``, else the job's ``RAY_ADDRESS``, else None (start local).

    >>> effective_address(RayConfig(), {}) is None
    True
    >>> effective_address(RayConfig(), {"RAY_ADDRESS": "10.0.0.1:6379"})
    'auto'
    >>> effective_address(RayConfig(address="ray://head:10001"), {"RAY_ADDRESS": "x"})
    'ray://head:10001'

    A job server URL in ``RAY_ADDRESS`` (``http://127.0.0.1:8265``, exported for
    ``ray job submit``) is not a cluster to join: a local run still starts its own Ray.

    >>> effective_address(RayConfig(), {"RAY_ADDRESS": "http://127.0.0.1:8265"}) is None
    True
    """
    environ = os.environ if environ is None else environ
    if cfg.address is not None:
        return cfg.address
    found = environ.get("RAY_ADDRESS", "")
    return "auto" if found and not found.startswith(("http://", "https://")) else None


def init_ray(cfg: RayConfig) -> dict:
    """Start or join Ray as configured and return the cluster's resources.

    Reuses an already initialised Ray (tests share one session). A local Ray binds
    its dashboard and job server to ``127.0.0.1``.
    """
    import ray

    from recsys.ray_output import WORKER_SETUP_HOOK, capture_ray_output, quiet_ray_loggers

    if not ray.is_initialized():
        own_handler = _python_sigterm_handler()
        quiet_ray_loggers()                  # "Started a local Ray instance" and the like: the run's log file
        # every worker sends its recsys log records to the driver as marked lines (recsys.ray_output)
        env: dict = {"worker_process_setup_hook": WORKER_SETUP_HOOK}
        if cfg.runtime_env:
            env["env_vars"] = dict(cfg.runtime_env)
        address = effective_address(cfg)
        if address is None:
            # "local": always a new single-node Ray, never a cluster that `ray start` left on this machine
            ray.init(
                address="local",
                num_cpus=cfg.num_cpus or os.cpu_count(),
                num_gpus=cfg.num_gpus,
                object_store_memory=cfg.object_store_memory,
                include_dashboard=cfg.include_dashboard,
                dashboard_host=LOCAL_DASHBOARD_HOST,
                log_to_driver=cfg.log_to_driver,
                runtime_env=env,
            )
        else:
            ray.init(address=address, log_to_driver=cfg.log_to_driver, runtime_env=env)
        if own_handler is not None:
            # ray.init installs its own SIGTERM handlers (Python's, then its C++ core's, which aborts):
            # the entry point's (rayjobs._common) ends the run as failed instead
            signal.signal(signal.SIGTERM, own_handler)
    quiet_ray_data()
    capture_ray_output()
    # Tune's legacy output engine at verbose=0 prints nothing; the newer one still prints each search's header
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    return dict(ray.cluster_resources())


def stop_ray() -> None:
    """Shut this process's Ray down (a local Ray's workers end with it; a cluster's job ends its tasks)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM): raised by the entry point's handler.

    A BaseException, as KeyboardInterrupt is, so no ``except Exception`` on the way up
    swallows it; the run's writer records the run as failed with it.

    >>> str(Terminated(15))
    'the run was stopped by SIGTERM'
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"the run was stopped by {signal.Signals(signum).name}")


def _python_sigterm_handler():
    """The SIGTERM handler a Python caller installed (a function), else None (default, or not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    handler = signal.getsignal(signal.SIGTERM)
    return handler if callable(handler) else None


def quiet_ray_data() -> None:
    """Ray Data's own progress output off (the run shows its own progress); its logs go to the run's log file.

    No redrawn bars and no per-dataset progress blocks; what Ray Data logs (execution
    plans, an error's stack trace) goes through its logger, which
    :func:`recsys.ray_output.quiet_ray_loggers` sends to the run's log file.
    """
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.enable_operator_progress_bars = False


@contextmanager
def raise_user_errors() -> Iterator[None]:
    """Inside, a RecsysError raised in a Ray task reaches the caller as itself, not wrapped by Ray.

    Ray Data is told to keep the original exception of a failed map (otherwise only
    its text survives), and the wrapper Ray puts around it is removed here, so the
    user sees the same clear message the single-process path gives.
    """
    import ray.data

    context = ray.data.DataContext.get_current()
    previous = context.raise_original_map_exception
    context.raise_original_map_exception = True
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - re-raised below, unwrapped when it is ours
        found = _original_recsys_error(exc)
        if found is not None and found is not exc:
            raise found from None
        raise
    finally:
        context.raise_original_map_exception = previous


def user_error(exc: BaseException) -> RecsysError | None:
    """The RecsysError behind ``exc``: itself, or the one a Ray task, actor, Train worker or trial raised.

    Follows Ray's wrappers (``cause``), ``__cause__``/``__context__`` chains and Ray
    Train's per-worker failures; None when the failure is not one of ours.

    >>> from recsys.errors import DataError
    >>> try:
    ...     try:
    ...         raise DataError("bad", file="f.csv")
    ...     except DataError as inner:
    ...         raise RuntimeError("wrapped") from inner
    ... except RuntimeError as outer:
    ...     print(user_error(outer))
    f.csv: bad
    >>> user_error(ValueError("x")) is None
    True
    """
    return _original_recsys_error(exc)


def _original_recsys_error(exc: BaseException | None, depth: int = 0) -> RecsysError | None:
    from ray.exceptions import RayError

    if exc is None or depth > 10:
        return None
    if isinstance(exc, RecsysError) and not isinstance(exc, RayError):
        return exc
    failures = getattr(exc, "worker_failures", None)           # Ray Train: {worker: exception}
    inners = list(failures.values()) if isinstance(failures, dict) else []
    for inner in (getattr(exc, "cause", None), exc.__cause__, exc.__context__, *inners):
        found = _original_recsys_error(inner, depth + 1)
        if found is not None:
            return found
    return None
