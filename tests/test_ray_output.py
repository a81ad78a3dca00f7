"""What Ray's cluster tells the driver on its own (``(raylet) ...`` messages) goes to the run's log file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


DYING_WORKER_SCRIPT = """
import os, sys, time
from pathlib import Path
from recsys.console import LogConfig, attach_run_log, close_run_log, setup_logging
from recsys.ray_output import NativeStderrFilter
setup_logging(LogConfig())
attach_run_log(sys.argv[1])
with NativeStderrFilter():
    import ray
    from recsys.runtime import RayConfig, init_ray
    init_ray(RayConfig(num_cpus=1, include_dashboard=False))

    @ray.remote(max_retries=0)
    def die():
        os._exit(1)

    try:
        ray.get(die.remote())
    except Exception as exc:
        print("caught", type(exc).__name__, flush=True)
    log = Path(sys.argv[1]) / "run.log"
    deadline = time.monotonic() + 30                 # the raylet's message comes on its own thread
    while "A worker died" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    ray.shutdown()
close_run_log()
"""


@pytest.mark.slow
def test_the_raylets_messages_to_the_driver_go_to_the_log_file(tmp_path):
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    done = subprocess.run([sys.executable, "-c", DYING_WORKER_SCRIPT, str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "caught WorkerCrashedError\n" and "raylet" not in done.stderr, done.stdout + done.stderr
    assert "(pid=raylet) A worker died or was killed" in (tmp_path / "run.log").read_text()
