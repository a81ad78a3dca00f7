"""A Ray head of our own: the README's job recipe on loopback with free ports, stopped by its process group.

Never ``ray stop`` (it would end every Ray of this user, other test sessions'
included): the head runs in a new session (``setsid``), so stopping it is
``killpg`` of that one group, and only the processes of that group are waited for.
"""

from __future__ import annotations

import os
import shlex
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


def group_processes(pgid: int) -> list:
    """The processes of process group ``pgid`` (a head started in its own session, and what it started)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid:
                found.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def stop_group(pgid: int, deadline_s: float = 10) -> None:
    """SIGTERM process group ``pgid``; SIGKILL what is left after ``deadline_s``; return once the group is empty.

    The raylet, its workers and agents end within seconds of SIGTERM; the ``ray start --block``
    process and the GCS take some 30 s more to wind down, with nothing to keep, so they get SIGKILL.
    """
    for sig, wait_s in ((signal.SIGTERM, deadline_s), (signal.SIGKILL, 30)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + wait_s
        while time.monotonic() < end:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
    raise AssertionError(f"process group {pgid} still has processes after SIGKILL: {group_processes(pgid)}")


class RecipeHead:
    """The README's local job recipe (``export RAY_AUTH_MODE=token`` ... ``ray job submit``) as one bash script.

    Changed from the README, nothing else: the ports (free ones), ``HOME`` (a temporary
    directory: its ``~/.ray/auth_token``), the head's lifetime (``--block`` in its own process
    group, left running after the script for more jobs), a marker resource ``recsys_test_head``
    (so a run can tell it joined this head), the job's data size (``job_args``) and its
    ``report.dir``. The script checks that the head refuses a request without the token.
    """

    def __init__(self, recipe: list[str], work: Path, job_args: list[str], report_dir: Path) -> None:
        self.recipe, self.work, self.job_args, self.report_dir = recipe, work, job_args, report_dir
        self.home = work / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rr", dir="/tmp"))   # short: socket paths have a limit
        self.dashboard_port = free_port()
        self.pid_file, self.log = work / "head.pid", work / "head.log"
        self.pgid: int | None = None
        self.recipe_run: subprocess.CompletedProcess | None = None

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def env(self, **extra: str) -> dict:
        """ray_env with this HOME and no RAY_AUTH_MODE (the recipe exports it)."""
        env = ray_env(HOME=str(self.home), **extra)
        env.pop("RAY_AUTH_MODE")
        env.update(extra)
        return env

    def script(self) -> str:
        url, lines = self.dashboard_url, ["set -e"]
        for command in self.recipe:
            command = command.replace("8265", str(self.dashboard_port))
            if command.startswith("ray start --head"):
                ports = " ".join(f"--{name}={free_port()}" for name in (
                    "port", "ray-client-server-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                    "metrics-export-port", "runtime-env-agent-port", "node-manager-port", "object-manager-port"))
                command = (f"setsid {command} --block --disable-usage-stats --node-ip-address=127.0.0.1 {ports} "
                           f"--resources='{{\"recsys_test_head\": 1}}' --temp-dir={self.temp_dir} > {self.log} 2>&1 "
                           f"& echo $! > {self.pid_file}\n"
                           # up, and refusing a request without the token (at most 5 minutes)
                           f"for i in $(seq 150); do RAY_AUTH_MODE=disabled ray job list --address {url} 2>&1 "
                           f"| grep -q Unauthorized && break; sleep 2; done\n"
                           f"RAY_AUTH_MODE=disabled ray job list --address {url} 2>&1 | grep -q Unauthorized")
            if command.startswith("ray job submit"):
                lines.append(f"for i in $(seq 60); do ray job submit --address {url} -- python -c pass > /dev/null "
                             "2>&1 && break; sleep 5; done")   # the head's job agent is up
                command = command.replace("$PWD/reports/first-job", str(self.report_dir))
                command += " " + " ".join(shlex.quote(arg) for arg in self.job_args)
            lines.append(command)
        return "\n".join(lines)

    def run(self, timeout: float = 1500) -> subprocess.CompletedProcess:
        """The recipe, once (kept as ``recipe_run``); the head stays up (``stop`` ends it)."""
        try:
            self.recipe_run = subprocess.run(["bash", "-c", self.script()], cwd=REPO, env=self.env(),
                                             capture_output=True, text=True, timeout=timeout)
            return self.recipe_run
        finally:
            if self.pid_file.exists():
                self.pgid = int(self.pid_file.read_text())

    def ray_cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """``ray <args>`` against this head's job server, with the token (``RAY_AUTH_MODE=token``, HOME's file)."""
        return subprocess.run([str(VENV_BIN / "ray"), *args], env=self.env(RAY_AUTH_MODE="token",
                                                                           RAY_ADDRESS=self.dashboard_url),
                              cwd=REPO, capture_output=True, text=True, timeout=timeout)

    def our_processes(self) -> list:
        return group_processes(self.pgid) if self.pgid else []

    def stop(self) -> None:
        if self.pgid:
            stop_group(self.pgid)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
