"""Every deployment file in cluster/ and configs/ray/ parses and names things that exist.

A renamed entry point, a Ray version bumped in pyproject.toml but not in the images,
a GPU worker group that lost its GPUs or a job server opened beyond loopback fails here.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
RAY_VERSION = next(re.search(r"==([\d.]+)", d).group(1) for d in PYPROJECT["project"]["dependencies"]
                   if d.startswith("ray["))
pytestmark = pytest.mark.cluster
STAGE_MODULES = sorted(p.stem for p in (REPO / "rayjobs").glob("*.py") if not p.stem.startswith("_"))


def load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def entry_module(command: str) -> tuple[str, list[str]]:
    """``python -m <module> args...`` → (module, args); fails for any other command."""
    words = shlex.split(command)
    assert words[:2] == ["python", "-m"], f"entry point must be `python -m rayjobs.<stage>`: {command!r}"
    return words[2], words[3:]


def assert_module_exists(module: str) -> None:
    assert module.startswith("rayjobs."), module
    assert importlib.util.find_spec(module) is not None, f"{module} does not exist"
    assert module.split(".", 1)[1] in STAGE_MODULES


def assert_overrides_compose(args: list[str]) -> None:
    from rayjobs._common import compose

    compose(args)          # raises on a misspelt key or a wrong type


def test_every_stage_module_has_a_hydra_main():
    """Each stage module's main is rayjobs._common.entry_point: @hydra.main behind the up-front settings check."""
    assert {"prepare", "embed", "train", "evaluate", "diagnose", "pipeline"} <= set(STAGE_MODULES)
    assert "hydra.main(" in (REPO / "rayjobs" / "_common.py").read_text()
    for stage in STAGE_MODULES:
        text = (REPO / "rayjobs" / f"{stage}.py").read_text()
        assert "@entry_point" in text and 'if __name__ == "__main__"' in text, stage


def test_runtime_env_uploads_the_checkout_installs_the_requirements_and_stays_offline():
    env = load("runtime_env.yaml")
    assert env["working_dir"] == "."
    assert {".venv", ".git", "reports", "data_cache", "outputs"} <= set(env["excludes"])
    wanted = [d for d in PYPROJECT["project"]["dependencies"] if not d.startswith("ray[")]
    assert env["pip"] == wanted, "runtime_env pip list must equal pyproject's dependencies (ray excluded)"
    assert env["env_vars"]["HF_HUB_OFFLINE"] == "1"
    assert set(env) <= {"working_dir", "excludes", "pip", "env_vars"}
    assert all(isinstance(v, str) for v in env["env_vars"].values()), "env var values must be strings"


def test_cluster_launcher_has_a_cpu_head_and_an_autoscaling_gpu_group():
    spec = load("ray-cluster.aws.yaml")
    types = spec["available_node_types"]
    head = types[spec["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"]["CPU"] >= 1
    assert head["max_workers"] == 0
    gpu = [t for name, t in types.items() if name != spec["head_node_type"]]
    assert len(gpu) == 1 and gpu[0]["resources"]["GPU"] >= 1
    assert gpu[0]["min_workers"] == 0 < gpu[0]["max_workers"] <= spec["max_workers"]
    assert spec["provider"]["type"] in {"aws", "gcp", "azure"}
    assert spec["docker"]["image"].startswith(f"rayproject/ray:{RAY_VERSION}-")
    head_start = " ".join(spec["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start, "the job server must listen on loopback only"
    for command in spec["head_start_ray_commands"] + spec["worker_start_ray_commands"]:
        if "ray start" in command:
            assert "RAY_AUTH_MODE=token" in command
    assert "/home/ray/recsys" in spec["file_mounts"]
    assert any("pip install" in c and "-e ." in c for c in spec["setup_commands"])


def _containers(group: dict) -> list[dict]:
    return group["template"]["spec"]["containers"]


def _check_ray_cluster_spec(spec: dict) -> None:
    assert spec["rayVersion"] == RAY_VERSION
    assert spec["authOptions"]["mode"] == "token"
    head = spec["headGroupSpec"]
    (head_container,) = _containers(head)
    assert "nvidia.com/gpu" not in head_container["resources"]["limits"], "the head is a CPU node"
    assert int(head["rayStartParams"]["num-cpus"]) >= 1
    (workers,) = spec["workerGroupSpecs"]
    (worker,) = _containers(workers)
    assert int(worker["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert worker["resources"]["requests"]["nvidia.com/gpu"] == worker["resources"]["limits"]["nvidia.com/gpu"]
    assert workers["minReplicas"] <= workers["replicas"] <= workers["maxReplicas"]
    assert spec.get("enableInTreeAutoscaling") is True
    for container in (head_container, worker):
        assert container["image"] == head_container["image"] and container["image"].endswith(":0.1.0")
        assert container["workingDir"] == "/home/ray/recsys"
        assert {"name": "HF_HUB_OFFLINE", "value": "1"} in container["env"]


def test_kuberay_raycluster():
    spec = load("kuberay-raycluster.yaml")
    assert (spec["apiVersion"], spec["kind"]) == ("ray.io/v1", "RayCluster")
    _check_ray_cluster_spec(spec["spec"])


def test_kuberay_rayjob_runs_an_existing_entry_point_with_valid_overrides():
    spec = load("kuberay-rayjob.yaml")
    assert (spec["apiVersion"], spec["kind"]) == ("ray.io/v1", "RayJob")
    job = spec["spec"]
    module, args = entry_module(job["entrypoint"])
    assert_module_exists(module)
    assert "ray.address=auto" in args
    assert_overrides_compose(args)
    assert any(a.startswith("report.dir=s3://") for a in args), "results must land on shared storage"
    runtime_env = yaml.safe_load(job["runtimeEnvYAML"])
    assert runtime_env["env_vars"]["HF_HUB_OFFLINE"] == "1"
    assert job["shutdownAfterJobFinishes"] is True
    _check_ray_cluster_spec(job["rayClusterSpec"])


def test_dockerfile_uses_the_pinned_ray_and_installs_the_checkout():
    text = (CLUSTER / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{RAY_VERSION}-" in text
    assert "WORKDIR /home/ray/recsys" in text and "pip install --no-cache-dir -e ." in text
    for folder in ("recsys", "rayjobs", "configs"):
        assert f"COPY --chown=ray:users {folder} " in text


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs" / "ray").glob("*.yaml")))
def test_ray_config_group_entries_compose(name):
    from rayjobs._common import compose

    cfg = compose([f"ray={Path(name).stem}"])
    assert cfg.ray.address in (None, "auto")


def test_readme_commands_name_existing_modules_and_files():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## From laptop to cluster", 1)[1].split("\n## ", 1)[0]
    for module in re.findall(r"python -m (rayjobs\.\w+)", section):
        assert_module_exists(module)
    for path in set(re.findall(r"cluster/[\w.-]+", section)):
        assert (REPO / path).exists(), path
