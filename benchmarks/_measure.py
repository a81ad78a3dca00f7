"""Run a command in a fresh process and record wall time and peak memory of its whole process tree.

The tree includes a local Ray's GCS, raylet and workers (children of the driver), so
the Ray Data path is charged for every process it starts, not just the driver.
"""

from __future__ import annotations

import subprocess
import threading
import time

import psutil


def run_measured(cmd: list[str], env: dict | None = None, poll_s: float = 0.2) -> dict:
    """Run ``cmd``; return wall seconds, peak summed RSS (MiB) of the process tree, exit code, tail of output."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [root] + root.children(recursive=True)
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], total)
            except psutil.Error:
                pass
            done.wait(poll_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    done.set()
    sampler.join()
    return {
        "wall_s": time.perf_counter() - start,
        "peak_rss_mib": peak[0] / 2**20,
        "returncode": proc.returncode,
        "output_tail": output[-2000:],
    }
