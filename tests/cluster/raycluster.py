"""A Ray head of our own: ``ray start --head --block`` on loopback with free ports, stopped by its process group.

Never ``ray stop`` (it would end every Ray of this user, other test sessions'
included): the head runs as a child process in a new session, so stopping it is
``killpg`` of that one group, and only the processes that Ray started under this
head's temp dir are waited for.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nobody listens on right now (bind port 0 on loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ray_env(**extra: str) -> dict:
    """The environment of our Ray processes: this venv first on PATH, no auth token, no progress bars."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", RAY_AUTH_MODE="disabled",
               RAY_DATA_DISABLE_PROGRESS_BARS="1", RAY_USAGE_STATS_ENABLED="0", HF_HUB_OFFLINE="1",
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def wait_until(check, deadline_s: float, what: str, every_s: float = 0.5):
    """Poll ``check()`` until it returns something truthy; AssertionError naming ``what`` after the deadline."""
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:  # noqa: BLE001 - not ready yet
            last, value = exc, None
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {deadline_s:.0f}s waiting for {what} (last error: {last!r})")


class LocalHead:
    """``ray start --head`` as a subprocess we own, dashboard and job server on 127.0.0.1."""

    def __init__(self, num_cpus: int = 2, resources: str | None = None) -> None:
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))   # short: socket paths have a limit
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.num_cpus, self.resources = num_cpus, resources
        self.process: subprocess.Popen | None = None
        self.log = self.temp_dir / "ray-start.log"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start(self, deadline_s: float = 120) -> "LocalHead":
        command = [str(VENV_BIN / "ray"), "start", "--head", "--block", "--disable-usage-stats",
                   "--node-ip-address=127.0.0.1", f"--port={self.gcs_port}", f"--num-cpus={self.num_cpus}",
                   "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
                   f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
                   f"--dashboard-agent-grpc-port={free_port()}", f"--metrics-export-port={free_port()}",
                   f"--runtime-env-agent-port={free_port()}", f"--node-manager-port={free_port()}",
                   f"--object-manager-port={free_port()}", "--object-store-memory=200000000",
                   f"--temp-dir={self.temp_dir}"]
        if self.resources:
            command.append(f"--resources={self.resources}")
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=ray_env(),
                                            cwd=self.temp_dir, start_new_session=True)
        wait_until(self._jobs_api_up, deadline_s, f"the job server at {self.dashboard_url}")
        return self

    def _jobs_api_up(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"ray start exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
        from ray.job_submission import JobSubmissionClient

        JobSubmissionClient(self.dashboard_url).list_jobs()
        return True

    def ray_cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """``ray <args>`` against this head's job server."""
        return subprocess.run([str(VENV_BIN / "ray"), *args], env=ray_env(RAY_ADDRESS=self.dashboard_url),
                              cwd=REPO, capture_output=True, text=True, timeout=timeout)

    def our_processes(self) -> list:
        """Processes of this head's process group (the ``ray start`` child and what it started)."""
        import psutil

        found = []
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(proc.pid) == self.process.pid:
                    found.append(proc)
            except (ProcessLookupError, PermissionError, psutil.Error):
                continue
        return found

    def stop(self, deadline_s: float = 60) -> None:
        """SIGTERM our process group, SIGKILL what is left after ``deadline_s``; remove the temp dir."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            pass
        try:
            wait_until(lambda: not self.our_processes(), deadline_s, "the head's processes to exit")
        except AssertionError:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_until(lambda: not self.our_processes(), 30, "the head's processes to die")
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "LocalHead":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
