"""The pipeline submitted as a Ray job to a real local cluster (``ray start --head``), read back from its tables.

The cluster is the README's local job recipe, run once for this module
(tests/cluster/raycluster.py, ``RecipeHead``): token authentication on, our head on
loopback with free ports, stopped through its own process group at the end. The
recipe's own ``ray job submit`` runs the pipeline on tiny data; a second job goes
to the same head with the token and the runtime env of cluster/runtime_env.yaml
(its pip list left out: the head runs in this venv and there is no network here),
without ``ray.address``, and keeps its report, embedding cache and checkpoints on S3
(a moto server on loopback; the runtime env adds the AWS_* variables).
"""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml

from recsys.pipeline import RUN_STAGES, STAGES
from recsys.report.reader import load_tables
from tests.cluster.conftest import BUCKET, aws_variables, s3_keys
from tests.cluster.raycluster import REPO, RecipeHead
from tests.test_readme import README, job_recipe

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

TINY = ["dataset.synthetic.n_users=150", "dataset.synthetic.n_items=100", "dataset.synthetic.n_topics=3",
        "dataset.synthetic.mean_interactions_per_user=10", "dataset.synthetic.chunk_users=150",
        "models=[pop,mf]", "train.epochs=2", "eval.bootstrap_samples=50",
        "diagnose.importance.bootstrap_samples=50", "encoder.progress_every_s=0", "tune.enabled=false"]
# The job that keeps its run on S3: the stages up to evaluate of pop and mf (the text vectors: embed's cache).
S3_RUN = ["dataset.synthetic.n_users=120", "dataset.synthetic.n_items=80", "dataset.synthetic.n_topics=3",
          "dataset.synthetic.mean_interactions_per_user=10", "dataset.synthetic.chunk_users=120",
          "models=[pop,mf]", "train.epochs=2", "eval.bootstrap_samples=50", "data.engine=local",
          "encoder.progress_every_s=0"]
S3_REPORT, S3_CACHE = f"s3://{BUCKET}/runs/pipeline-1", f"s3://{BUCKET}/cache/embeddings"


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """The README's job recipe, run once: token authentication on, the pipeline submitted on TINY data; the head
    stays up for this module's other jobs and is stopped (its process group) at the end."""
    work = tmp_path_factory.mktemp("recipe")
    started = RecipeHead(job_recipe(README.read_text()), work, [*TINY, f"data.cache_dir={work}/cache"],
                         work / "first-job")
    try:
        started.run()
        yield started
    finally:
        started.stop()
    assert not started.our_processes()


@pytest.fixture(scope="module")
def runtime_env(tmp_path_factory, s3_endpoint) -> str:
    env = yaml.safe_load((REPO / "cluster" / "runtime_env.yaml").read_text())
    env.pop("pip")                          # this venv already has them; the head cannot reach an index
    env.pop("working_dir")                  # given on the command line as --working-dir .
    env["env_vars"].update(aws_variables(s3_endpoint))   # the moto server (tests/cluster/conftest.py)
    path = tmp_path_factory.mktemp("env") / "runtime_env.yaml"
    path.write_text(yaml.safe_dump(env))
    return str(path)


def submit(head: RecipeHead, runtime_env: str, *entrypoint: str) -> None:
    """``ray job submit`` (waiting for the job) with the token; fails the test unless the job succeeded."""
    done = head.ray_cli("job", "submit", "--working-dir", ".", "--runtime-env", runtime_env, "--", *entrypoint)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


def test_the_job_recipe_submits_with_a_token(head):
    """The README's recipe, as one script: a request without the token is refused, the submitted job succeeds."""
    done = head.recipe_run
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert "succeeded" in (done.stdout + done.stderr).lower()
    assert (head.home / ".ray" / "auth_token").exists()
    assert load_tables(str(head.report_dir))["runs"]["status"][0] == "succeeded"


def test_the_pipeline_runs_as_a_submitted_job_and_leaves_complete_tables(head):
    """The recipe's job (``python -m rayjobs.pipeline ray.address=auto``), read back from its tables."""
    done = head.recipe_run
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    report = head.report_dir
    tables = load_tables(str(report))
    run = tables["runs"].row(0, named=True)
    assert run["status"] == "succeeded" and run["error"] is None
    stages = json.loads(run["stages"])
    assert stages == [s for s in [*STAGES, *RUN_STAGES] if s in stages]             # in the pipeline's order
    assert {"prepare", "embed", "train", "evaluate", "diagnose", "compare"} <= set(stages)
    cluster = json.loads(run["cluster"])
    assert cluster["address"] == "auto" and cluster["resources"].get("recsys_test_head") == 1   # joined our head
    for table in ("datasets", "embedding_health", "curves", "grad_stats", "metrics", "user_metrics",
                  "recommendations", "comparisons", "findings", "rankings", "insights"):
        assert tables[table].height > 0, f"{table} is empty"
    datasets = tables["datasets"]
    assert set(datasets["stage"]) == {"loaded", "filtered", "train", "val", "test"}
    metrics = tables["metrics"]
    assert set(metrics["model"]) == {"pop", "mf"} and set(metrics["split"]) == {"val", "test"}
    # every model has per-user rows for the same users, and a full top-k list for each of them
    user_rows = tables["user_metrics"].filter(pl.col("split") == "test")
    assert user_rows.group_by("model", "user_id", "metric", "k").len()["len"].max() == 1   # one row per key
    first = user_rows.row(0, named=True)
    one_metric = user_rows.filter((pl.col("metric") == first["metric"]) & (pl.col("k") == first["k"]))
    users = {m: set(g["user_id"]) for (m,), g in one_metric.group_by("model")}
    assert len(users) == 2 and all(u == users["pop"] for u in users.values()) and users["pop"]
    recs = tables["recommendations"].filter(pl.col("split") == "test")
    k = recs["rank"].max()
    lists = recs.group_by("model", "user_id").agg(pl.len().alias("n"), pl.col("rank").n_unique().alias("ranks"))
    assert (lists["n"] == k).all() and (lists["ranks"] == k).all()
    assert (report / "diagnosis.txt").exists()
    assert not (report / "_staging").exists()


@pytest.fixture(scope="module")
def s3_job(head, runtime_env, s3_endpoint, tmp_path_factory):
    """``python -m rayjobs.evaluate`` submitted without ``ray.address``, its report, embedding cache and checkpoints
    on s3:// URIs of the moto server (the job's runtime env gives it and its workers the AWS_* variables).
    Returns the run's tables, read back through S3."""
    work = tmp_path_factory.mktemp("s3-job")
    submit(head, runtime_env, "python", "-m", "rayjobs.evaluate", *S3_RUN, f"report.dir={S3_REPORT}",
           f"encoder.cache_dir={S3_CACHE}", f"data.cache_dir={work}/prepared")
    # The endpoint on the URI: this process opens a bucket's filesystem once (recsys.storage) and the next
    # module's moto server, with a bucket of the same name, is another one.
    with pytest.MonkeyPatch.context() as env:
        for name, value in aws_variables(s3_endpoint).items():
            env.setenv(name, value)
        return load_tables(f"{S3_REPORT}?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1")


def test_a_job_without_ray_address_joins_the_cluster_it_was_submitted_to(s3_job):
    run = s3_job["runs"].row(0, named=True)
    assert run["status"] == "succeeded"
    assert json.loads(run["cluster"])["resources"].get("recsys_test_head") == 1


def test_the_pipeline_keeps_its_report_cache_and_checkpoints_on_s3(s3_job, s3_endpoint):
    """Keys listed with boto3, independently of the pyarrow filesystem the code writes through."""
    tables = s3_job
    run = tables["runs"].row(0, named=True)
    assert run["status"] == "succeeded"
    assert json.loads(run["stages"]) == ["prepare", "embed", "train", "evaluate"]
    assert set(tables["metrics"]["model"]) == {"pop", "mf"}
    keys = s3_keys(s3_endpoint, "runs/pipeline-1/")
    for model in ("pop", "mf"):
        assert f"runs/pipeline-1/checkpoints/{model}/best_model.pt" in keys, model
    assert any(k.startswith("runs/pipeline-1/checkpoints/mf/ray/") and k.endswith("/trainer.pt")
               for k in keys)                                         # Ray Train's checkpoints, on S3
    cache_keys = s3_keys(s3_endpoint, "cache/embeddings/")
    assert any("/parts/part-" in k for k in cache_keys) and any("/datasets/" in k for k in cache_keys)
    assert not any(k.endswith(".tmp") for k in keys + cache_keys)       # no temporary object left behind


def test_the_job_server_listens_on_loopback_only(head):
    import psutil

    listening = {c.laddr for p in head.our_processes() for c in _connections(p) if c.status == psutil.CONN_LISTEN}
    dashboard = [addr for addr in listening if addr.port == head.dashboard_port]
    assert dashboard and all(addr.ip == "127.0.0.1" for addr in dashboard)


def _connections(proc):
    try:
        return proc.net_connections(kind="tcp")
    except Exception:  # noqa: BLE001 - a process that ended or that we cannot inspect
        return []
