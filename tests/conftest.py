"""Shared fixtures: one local Ray session for every test marked ``ray``, paths to shared data, S3 on loopback,
one run of the pipeline entry point."""

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


# The entry-point run below: tiny synthetic data, pop, mf and the example plugin model (examples/neumf, when
# installed: tests/test_plugin_pipeline.py reads its rows), the default tuning round on (of the plugin; else mf).
ENTRY_RUN = ["dataset.synthetic.n_users=200", "dataset.synthetic.n_items=120", "dataset.synthetic.n_topics=3",
             "dataset.synthetic.mean_interactions_per_user=10", "dataset.synthetic.chunk_users=100",
             "train.epochs=2", "ray.num_cpus=2"]


def entry_run_models() -> list[str]:
    """The entry run's models and their settings: the example plugin joins when its package is installed."""
    from recsys.models.registry import SPECS

    if "neumf" not in SPECS:
        return ["models=[pop,mf]"]
    return ["models=[pop,mf,neumf]", "model.neumf.dim=8", "model.neumf.mlp_width=16", "tune.model=neumf"]


def entry_run_tuned() -> str:
    """The model the entry run's tuning round searches."""
    return next((arg.split("=", 1)[1] for arg in entry_run_models() if arg.startswith("tune.model=")), "mf")


@pytest.fixture(scope="session")
def pipeline_entry_run(tmp_path_factory):
    """``python -m rayjobs.pipeline`` (``ENTRY_RUN``) run once, as a person runs it: its own local Ray, no
    progress-bar variable. Returns ``(completed process, run dir)``; tests/test_console.py reads its console,
    tests/test_pipeline.py its tables."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("entry")
    env = dict(os.environ, RAY_AUTH_MODE="disabled", HF_HUB_OFFLINE="1")
    env.pop("RAY_DATA_DISABLE_PROGRESS_BARS", None)     # as a user runs it: the console alone must be quiet
    result = subprocess.run([sys.executable, "-m", "rayjobs.pipeline", *ENTRY_RUN, *entry_run_models(),
                             f"report.dir={root}/run",
                             f"data.cache_dir={root}/cache", f"hydra.run.dir={root}/hydra"],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    return result, root / "run"


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


# Test files that share an expensive session fixture run on the same xdist worker (``make test`` runs two):
# the entry-point run (pipeline_entry_run) and the report runs (tests/report/conftest.py).
SHARED_SCOPES = {"tests/test_console.py": "entry-run", "tests/test_pipeline.py": "entry-run",
                 "tests/test_plugin_pipeline.py": "entry-run"}


def shared_scope(nodeid: str) -> str:
    """The xdist scheduling scope of a test: its file, or the name of the group of files it shares a session
    fixture with.

    >>> shared_scope("tests/test_console.py::test_x"), shared_scope("tests/report/test_html.py::test_y")
    ('entry-run', 'report')
    >>> shared_scope("tests/data/test_split.py::test_z[1]")
    'tests/data/test_split.py'
    """
    path = nodeid.split("::", 1)[0]
    if path.startswith("tests/report/"):
        return "report"
    return SHARED_SCOPES.get(path, path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Whole files (or groups of files, :func:`shared_scope`) to each worker, so that module and session
    fixtures run once."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedScopeScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return shared_scope(nodeid)

    return SharedScopeScheduling(config, log)


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
