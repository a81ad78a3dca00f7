"""A run stopped with SIGTERM (``ray job stop``, a scheduler, ``kill``) ends as failed, in one line, exit 143;
with Ctrl-C (SIGINT) the same, exit 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from recsys.report.reader import load_tables

REPO = Path(__file__).resolve().parents[1]
TINY = ["dataset=synthetic", "dataset.synthetic.n_users=120", "dataset.synthetic.n_items=60",
        "dataset.synthetic.n_topics=3", "dataset.synthetic.mean_interactions_per_user=8", "models=[pop,mf]",
        "train.epochs=50", "tune.enabled=false", "ray.num_cpus=2", "data.engine=local", "encoder.engine=local"]


@pytest.mark.slow
@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_stage_ends_the_run_as_failed_with_one_line_and_exit_128_plus_it(tmp_path, sent):
    env = dict(os.environ, RAY_AUTH_MODE="disabled", HF_HUB_OFFLINE="1")
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "rayjobs.pipeline", *TINY, f"report.dir={run_dir}", f"data.cache_dir={tmp_path}/cache",
         f"hydra.run.dir={tmp_path}/hydra"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(600, process.kill)      # a hung run fails the test instead of hanging it
    watchdog.start()
    try:
        shown = []
        for line in process.stdout:                    # the console flushes every line
            shown.append(line)
            if "train: started" in line:               # Ray Train is starting its workers
                process.send_signal(sent)
                break
        out, err = process.communicate(timeout=300)
    finally:
        watchdog.cancel()
    shown = "".join(shown) + out + err
    assert "train: started" in shown, shown[-3000:]
    assert process.returncode == 128 + sent, shown[-3000:]
    assert err.splitlines() == [f"error: the run was stopped by {sent.name}; it is recorded as failed "
                                f"(log: {run_dir / 'run.log'})"], shown[-3000:]
    assert "Traceback" not in shown and "received at time" not in shown
    tables = load_tables(str(run_dir))
    runs = tables["runs"]
    stopped_by = "Terminated: " if sent == signal.SIGTERM else "KeyboardInterrupt"    # Ctrl-C's own exception
    assert runs["status"].to_list() == ["failed"] and runs["error"][0].startswith(stopped_by)
    assert runs["stages"][0] == '["prepare", "embed"]'
    assert tables["metrics"].height == 0 and tables["curves"].height == 0    # the stopped stage published nothing
    assert not (run_dir / "_staging").exists() or not any((run_dir / "_staging").iterdir())
    assert f"run stopped: the run was stopped by {sent.name}" in (run_dir / "run.log").read_text()
