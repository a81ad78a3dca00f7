"""Shared fixtures: one local Ray session for every test marked ``ray``, paths to shared data, S3 on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def ml_latest_small() -> Path:
    """The real MovieLens latest-small files beside the repository (skips when absent)."""
    path = SHARED_DATASETS / "ml-latest-small"
    if not (path / "ratings.csv").exists():
        pytest.skip(f"real dataset not found at {path}")
    return path


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on loopback for this module's tests (no buckets yet); yields its URL."""
    from tests.moto_s3 import moto_server

    with moto_server() as url:
        yield url


@pytest.fixture
def aws_env(s3_endpoint, monkeypatch):
    """This process talks to the moto server through the usual AWS_* variables; returns its URL."""
    from tests.moto_s3 import aws_variables

    for name, value in aws_variables(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    return s3_endpoint


@pytest.fixture(scope="session")
def ray_session():
    """A local 2-CPU Ray started once for the whole test session and stopped at its end."""
    import ray

    from recsys.runtime import RayConfig, init_ray

    started_here = not ray.is_initialized()
    init_ray(RayConfig(num_cpus=2, include_dashboard=False, log_to_driver=False))
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    if started_here:
        ray.shutdown()


def pytest_collection_modifyitems(config, items):
    # Every test marked `ray` gets the shared session without naming the fixture.
    for item in items:
        if item.get_closest_marker("ray") and "ray_session" not in getattr(item, "fixturenames", []):
            item.fixturenames.append("ray_session")


@pytest.fixture()
def one_torch_thread():
    """Tiny models train fastest on one thread (and do not fight other processes for the CPUs)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
