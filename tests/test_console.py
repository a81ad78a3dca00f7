"""The console a person reads: stage lines and progress, Ray's internals in the run's log file."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from recsys.console import (CONSOLE, ConsoleFilter, ConsoleFormatter, LogConfig, ProgressLine, attach_run_log,
                            close_run_log, setup_logging)
from recsys.ray_output import handle_worker_lines, mark

REPO = Path(__file__).resolve().parents[1]
RAY_DATA_BLOCK = ("Running Dataset", "logging_progress", "Execution plan of Dataset", "streaming_executor")


@pytest.fixture
def routed(tmp_path):
    """setup_logging on a string console; pytest's root handlers put back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    console = io.StringIO()
    yield console
    close_run_log()
    logging.captureWarnings(False)                   # setup_logging routed Python's warnings: give them back
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_console_shows_stage_lines_and_warnings_and_the_file_gets_everything(routed, tmp_path):
    setup_logging(LogConfig(), stream=routed)
    logging.getLogger(CONSOLE).info("prepare: started")              # before the file exists: kept for it
    attach_run_log(tmp_path)
    logging.getLogger("recsys.train.stage").info("pop: {'status': 'completed'}")
    logging.getLogger("recsys.data.prepare").warning("dropped 3 rows")
    logging.getLogger("ray.data._internal.execution.streaming_executor").info("Execution plan of Dataset x")
    logging.getLogger("ray.data").error("Exception occurred in Ray Data")
    close_run_log()
    shown = routed.getvalue()
    assert "prepare: started" in shown and "warning: dropped 3 rows" in shown
    assert "pop: {" not in shown and "Execution plan" not in shown and "Ray Data" not in shown
    logged = (tmp_path / "run.log").read_text()
    for text in ("prepare: started", "pop: {", "dropped 3 rows", "Execution plan of Dataset x",
                 "Exception occurred in Ray Data"):
        assert text in logged


def test_python_warnings_go_to_the_run_log_not_the_console(routed, tmp_path):
    import warnings

    setup_logging(LogConfig(), stream=routed)
    attach_run_log(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a library's deprecation notice", FutureWarning, stacklevel=1)
    close_run_log()
    assert "deprecation notice" not in routed.getvalue()
    assert "FutureWarning: a library's deprecation notice" in (tmp_path / "run.log").read_text()


def test_debug_level_shows_rays_own_logs(routed, tmp_path):
    setup_logging(LogConfig(level="debug"), stream=routed)
    logging.getLogger("ray.data").info("Execution plan of Dataset y")
    assert "Execution plan of Dataset y" in routed.getvalue()


def test_a_workers_marked_record_is_handled_as_if_logged_here_and_other_lines_go_to_the_file(routed, tmp_path):
    setup_logging(LogConfig(), stream=routed)
    attach_run_log(tmp_path)
    handle_worker_lines({"pid": 11, "actor_name": "RayTrainWorker", "lines": [
        mark("recsys.train.loop", "INFO", "mf epoch 0: loss 4.79"),
        "Reporting training result 1: TrainingReport(checkpoint=...)"]})
    handle_worker_lines({"pid": 12, "actor_name": "ImplicitFunc", "lines": [
        mark("recsys.train.loop", "INFO", "mf epoch 3: loss 1.00"),
        mark("recsys.tune.trial", "WARNING", "trial diverged")]})
    close_run_log()
    shown = routed.getvalue()
    assert "mf epoch 0: loss 4.79" in shown and "warning: trial diverged" in shown
    assert "TrainingReport(" not in shown
    assert "mf epoch 3" not in shown                 # a tuning trial's epochs are not the console's
    logged = (tmp_path / "run.log").read_text()
    assert "(RayTrainWorker pid=11) Reporting training result 1: TrainingReport(" in logged
    assert "mf epoch 3: loss 1.00" in logged


def test_progress_lines_without_a_terminal_come_at_most_every_interval():
    lines, clock = [], iter([0.0, 1.0, 2.0, 11.0, 12.0, 25.0]).__next__
    progress = ProgressLine(100, "embed", unit="texts", every_s=10, emit=lines.append, clock=clock)
    for _ in range(5):
        progress.update(10)
    progress.close()
    assert lines == ["embed: 30/100 texts (30%), 11s", "embed: 50/100 texts (50%), 25s"]


def test_console_format_marks_warnings_and_indents_progress():
    formatter = ConsoleFormatter()
    stage = logging.LogRecord(CONSOLE, logging.INFO, "", 0, "train: started", None, None)
    epoch = logging.LogRecord("recsys.train.loop", logging.INFO, "", 0, "mf epoch 0", None, None)
    warn = logging.LogRecord("recsys.data", logging.WARNING, "", 0, "3 rows dropped", None, None)
    assert formatter.format(stage)[9:] == "train: started"
    assert formatter.format(epoch)[9:] == "  mf epoch 0"
    assert formatter.format(warn)[9:] == "warning: 3 rows dropped"
    assert not ConsoleFilter(debug=False).filter(logging.LogRecord("ray.tune", logging.WARNING, "", 0, "x", None,
                                                                    None))


@pytest.mark.slow
def test_a_pipeline_run_prints_stage_lines_and_leaves_rays_logs_in_the_run_log(pipeline_entry_run):
    """``python -m rayjobs.pipeline`` on tiny data as a user runs it (no progress-bar variable; the run of
    tests/conftest.py, whose tables tests/test_pipeline.py reads)."""
    result, run_dir = pipeline_entry_run
    shown = result.stdout + result.stderr
    assert result.returncode == 0, shown[-3000:]
    for stage in ("prepare", "embed", "train", "evaluate", "diagnose", "compare"):
        assert f"{stage}: started" in shown and f"{stage}: done in" in shown, stage
    assert "200 users" in shown and "mf 2 epochs" in shown and "users evaluated" in shown
    assert "mf epoch 1:" in shown                    # a Ray Train worker's epoch line, as it happens
    assert not [text for text in RAY_DATA_BLOCK if text in shown]
    assert "TrainingReport(" not in shown and "Checkpoint successfully created" not in shown
    assert "Traceback" not in shown and "core_worker.cc" not in shown and "(raylet)" not in shown
    assert len(shown.splitlines()) <= 100, shown
    assert [line for line in shown.splitlines() if " done" in line and "embed" in line] == [
        line for line in shown.splitlines() if "embed: done in" in line]          # one closing line: the stage's
    # the diagnosis: one line per model and the file with the full text; the comparison: its strongest lines
    assert "remedy:" not in shown
    assert f"the full diagnosis (messages, remedies, edits): {run_dir / 'diagnosis.txt'}" in shown
    brief = shown.split("== dataset synthetic ==\n", 1)[1].split("\nthe full diagnosis", 1)[0].splitlines()
    assert brief[0].startswith("diagnosis: ") and all(line.startswith("  ") for line in brief[1:])
    assert any(line.startswith("  mf: ") for line in brief)
    assert "models compared on synthetic" in shown
    logged = (run_dir / "run.log").read_text()
    assert "TrainingReport(" in logged and "streaming_executor" in logged and "Started a local Ray" in logged
    assert "texts to encode" in logged                 # the encoder's first and last lines: the file only


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_is_a_bar_that_leaves_no_line():
    terminal = _Terminal()
    progress = ProgressLine(4, "tune directed", unit="trials", stream=terminal)
    for _ in range(4):
        progress.update(1)
    progress.close()
    drawn = terminal.getvalue()
    assert drawn.startswith("\rtune directed:") and "0/4" in drawn and "trials" in drawn
    assert "\n" not in drawn and drawn.endswith("\r")  # redrawn in place, then cleared (leave=False)


NATIVE_SCRIPT = """
import logging, os, sys
from recsys.console import LogConfig, attach_run_log, close_run_log, setup_logging
from recsys.ray_output import NativeStderrFilter
setup_logging(LogConfig())
attach_run_log(sys.argv[1])
with NativeStderrFilter():
    os.write(2, b"[2026-12-07 19:17:49,803 E 5843 5843] core_worker.cc:2465: Actor has constructor arguments\\n")
    print("error: a line for the user", file=sys.stderr, flush=True)
    os.write(2, b"no newline at the end")
close_run_log()
"""


def test_lines_of_rays_native_core_on_stderr_go_to_the_log_file_and_the_rest_stays(tmp_path):
    done = subprocess.run([sys.executable, "-c", NATIVE_SCRIPT, str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "error: a line for the user\nno newline at the end"
    assert "core_worker.cc:2465: Actor has constructor arguments" in (tmp_path / "run.log").read_text()
