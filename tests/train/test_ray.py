"""Ray Train: DDP over two workers matches one process; a killed worker resumes from its checkpoint."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
import torch

from recsys.train._ray import train_with_ray
from recsys.train.stage import train_local
from tests.train.blocks import block_data
from tests.train.test_loop import CFG, SMALL

pytestmark = pytest.mark.ray

EPOCHS = 8
TOWER = replace(SMALL.two_tower, dropout=0.0)        # no per-worker randomness: workers must agree with one process


def weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["state_dict"]


def test_two_workers_match_a_single_process(tmp_path):
    data, text = block_data()
    cfg = replace(CFG, epochs=3, engine="ray", num_workers=2, cpus_per_worker=0.5)
    distributed = train_with_ray("two_tower", TOWER, data, text, cfg, tmp_path / "ray")
    single = train_local("two_tower", TOWER, data, text, cfg, tmp_path / "local")
    a, b = weights(distributed.path), weights(single.path)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
    assert distributed.state.val_history == pytest.approx(single.state.val_history, abs=1e-3)
    assert distributed.state.status == "completed" and distributed.state.step == single.state.step
    assert {r["name"] for r in distributed.telemetry.curves} == {r["name"] for r in single.telemetry.curves}


def _our_train_workers() -> list[psutil.Process]:
    found = []
    for child in psutil.Process(os.getpid()).children(recursive=True):    # only this session's Ray processes
        try:
            if "RayTrainWorker" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def _kill_after_a_registered_checkpoint(storage: Path, killed: list, stop: threading.Event) -> None:
    # Ray Train registers reported checkpoints when its controller polls the workers (every ~2 s) and then
    # writes its snapshot: from that moment a restart must resume from a checkpoint.
    while not stop.is_set():
        snapshots = list(storage.glob("*/checkpoint_manager_snapshot.json"))
        if snapshots and "checkpoint_" in snapshots[0].read_text():
            for worker in _our_train_workers():
                worker.send_signal(signal.SIGKILL)
                killed.append(worker.pid)
            if killed:
                return
        time.sleep(0.01)


def test_a_killed_worker_resumes_from_the_last_checkpoint_and_completes(tmp_path):
    data, text = block_data(users_per_group=100, items_per_group=40, train_per_user=20)   # epochs of ~1 s
    cfg = replace(CFG, epochs=EPOCHS, engine="ray", num_workers=1, cpus_per_worker=1, max_failures=2)
    killed, stop = [], threading.Event()
    killer = threading.Thread(target=_kill_after_a_registered_checkpoint, args=(tmp_path / "ray" / "ray", killed, stop))
    killer.start()
    try:
        result = train_with_ray("two_tower", TOWER, data, text, cfg, tmp_path / "ray")
    finally:
        stop.set()
        killer.join()
    assert killed, "no training worker was found to kill"
    state = result.state
    assert state.status == "completed" and state.epoch == EPOCHS
    assert len(state.resumed_at) == 1 and 1 <= state.resumed_at[0] < EPOCHS
    epochs = [r["epoch"] for r in result.telemetry.curves if r["name"] == "train/epoch_loss"]
    assert epochs == list(range(EPOCHS))                                  # every epoch recorded exactly once
    uninterrupted = train_local("two_tower", TOWER, data, text, cfg, tmp_path / "local")
    a, b = weights(result.path), weights(uninterrupted.path)
    assert all(torch.equal(a[k], b[k]) for k in a)                        # resumed == never interrupted, bit for bit
