"""Security defaults: a local Ray listens on loopback only, checkpoints load no code, run ids stay inside report.dir."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
import torch

from recsys.errors import ConfigError
from recsys.report.writer import RunWriter, check_run_id
from tests.cluster.raycluster import REPO, ray_env


pytestmark = pytest.mark.cluster


@pytest.mark.slow
def test_a_local_ray_binds_its_dashboard_to_loopback():
    script = ("import ray\nfrom recsys.runtime import RayConfig, init_ray\n"
              "init_ray(RayConfig(num_cpus=1, include_dashboard=True, log_to_driver=False))\n"
              "print('URL', ray._private.worker.global_worker.node.address_info['webui_url'])\nray.shutdown()\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=ray_env(), capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    url = next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("URL"))
    assert url.startswith("127.0.0.1:"), url


class _Payload:
    def __reduce__(self):
        return (print, ("this ran while a checkpoint was being opened",))


def test_a_checkpoint_holding_pickled_code_is_refused(tmp_path):
    from recsys.models.base import tiny_inputs
    from recsys.models.registry import ModelSettings, build_model
    from recsys.train.checkpoint import FitState, load_checkpoint, save_checkpoint

    model = build_model("mf", ModelSettings().mf, tiny_inputs())
    save_checkpoint(tmp_path, model, model.state_dict(), None, FitState(epoch=1), {"curves": []})
    assert load_checkpoint(tmp_path).state.epoch == 1                      # a plain checkpoint loads
    torch.save({"optimizer": None, "state": {"epoch": 1}, "telemetry": _Payload()}, tmp_path / "trainer.pt")
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(tmp_path)


def test_no_component_trusts_remote_code():
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "recsys").rglob("*.py")
                 if "trust_remote_code=True" in p.read_text()]
    assert offenders == []


@pytest.mark.parametrize("bad", ["../escape", "a/b", "..", ".hidden", "-flag", "a\\b", "", "x" * 129, "run/../../x"])
def test_run_ids_that_could_leave_the_report_dir_are_refused(bad, tmp_path):
    with pytest.raises(ConfigError, match="not a plain name"):
        check_run_id(bad)
    with pytest.raises(ConfigError):
        RunWriter(tmp_path / "run", run_id=bad)
    assert not (tmp_path / "run").exists() and not (tmp_path / "escape").exists()


def test_a_report_root_run_id_is_checked_too():
    from dataclasses import replace

    from recsys.config import RecsysConfig
    from recsys.pipeline import report_dir_for

    assert str(report_dir_for(RecsysConfig(), "20261206-120000-abcdef")) == "reports/20261206-120000-abcdef"
    with pytest.raises(ConfigError):
        report_dir_for(replace(RecsysConfig()), "../../etc")


def test_a_ray_train_run_name_is_checked_before_anything_runs(tmp_path):
    from recsys.models.mf import MFConfig
    from recsys.train._ray import train_with_ray
    from recsys.train.config import TrainConfig
    from recsys.train.data import TrainingData

    data = TrainingData.from_arrays([0, 1], [0, 1], n_users=2, n_items=2, val_users=[0], val_items=[1])
    with pytest.raises(ConfigError, match="run name"):
        train_with_ray("mf", MFConfig(dim=2), data, None, TrainConfig(), tmp_path, run_name="../../x")
