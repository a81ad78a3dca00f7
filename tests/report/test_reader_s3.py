"""The report reader and `recsys report` on s3:// URIs, against a real S3 API served on loopback by moto.

Real pipeline runs are uploaded to a bucket and read back through pyarrow's S3 filesystem (the
same code path serves gs://, which is not tested here). The endpoint comes from AWS_ENDPOINT_URL,
or from ``?endpoint_override=...&scheme=http`` on the URI.
"""

from __future__ import annotations

import json

import polars as pl
import pytest

from recsys.cli import main
from recsys.report.diff import compare_runs
from recsys.report.reader import list_runs, load_tables, query, resolve_runs
from tests.moto_s3 import REGION, s3_client

pytestmark = pytest.mark.ray

BUCKET = "recsys-reports"


@pytest.fixture(scope="module")
def s3_runs(s3_endpoint, demo_run, second_run):
    """Both runs uploaded under s3://BUCKET/reports/<run_id>/; returns the run ids (demo first)."""
    import pyarrow.fs as pafs

    s3_client(s3_endpoint).create_bucket(Bucket=BUCKET)
    s3 = pafs.S3FileSystem(endpoint_override=s3_endpoint, scheme="http", region=REGION,
                           access_key="testing", secret_key="testing")
    ids = []
    for run in (demo_run, second_run):
        run_id = load_tables(run)["runs"]["run_id"].item()
        pafs.copy_files(str(run), f"{BUCKET}/reports/{run_id}", source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=s3)
        ids.append(run_id)
    return ids


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_tables_read_from_s3_equal_the_local_ones(s3_runs, aws_env, demo_run):
    uri = f"s3://{BUCKET}/reports/{s3_runs[0]}"
    remote, local = load_tables(uri), load_tables(demo_run)
    for table, frame in local.items():
        key = [c for c in frame.columns if frame.schema[c] != pl.Null]
        assert remote[table].sort(key, nulls_last=True).equals(frame.sort(key, nulls_last=True)), table


def test_glob_and_parent_select_both_runs(s3_runs, aws_env):
    assert [str(r).rsplit("/", 1)[-1] for r in resolve_runs(f"s3://{BUCKET}/reports/*")] == sorted(s3_runs)
    assert len(resolve_runs(f"s3://{BUCKET}/reports")) == 2
    runs = list_runs(f"s3://{BUCKET}/reports/*")
    assert set(runs["run_id"]) == set(s3_runs) and set(runs["status"]) == {"succeeded"}
    counts = query("SELECT run_id, COUNT(*) AS n FROM metrics GROUP BY run_id", f"s3://{BUCKET}/reports/*")
    assert set(counts["run_id"]) == set(s3_runs)


def test_endpoint_given_on_the_uri(s3_runs, s3_endpoint, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    uri = f"s3://{BUCKET}/reports/*?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1"
    assert query("SELECT COUNT(*) AS n FROM runs", uri)["n"].item() == 2


def test_cli_list_show_query_compare_export_on_s3(s3_runs, aws_env, capsys, tmp_path):
    root = f"s3://{BUCKET}/reports"
    code, out, err = run_cli(capsys, "report", "list", "--runs", f"{root}/*", "--format", "json")
    assert code == 0, err
    assert {r["path"] for r in json.loads(out)} == {f"{root}/{run_id}" for run_id in s3_runs}
    code, out, err = run_cli(capsys, "report", "show", s3_runs[0], "--root", root)
    assert code == 0, err
    assert "status     succeeded" in out and f"directory  {root}/{s3_runs[0]}" in out
    code, out, err = run_cli(capsys, "report", "show", f"{root}/{s3_runs[0]}", "findings", "--filter",
                             "severity=critical", "--format", "json")
    assert code == 0, err
    assert {r["severity"] for r in json.loads(out)} <= {"critical"}
    code, out, err = run_cli(capsys, "report", "query", "SELECT DISTINCT model FROM metrics ORDER BY model",
                             "--runs", f"{root}/*", "--format", "csv")
    assert (code, out) == (0, "model\nmf\npop\ntwo_tower\n")
    code, out, err = run_cli(capsys, "report", "compare", *s3_runs, "--root", root, "--metric", "ndcg@10",
                             "--format", "json")
    assert code == 0, err
    rows = {r["model"]: r for r in json.loads(out)}
    assert rows["mf"]["p_value"] is not None and rows["mf"]["n_paired"] > 0
    assert (rows["pop"]["delta"], rows["pop"]["p_value"]) == (0.0, None)     # popularity: same lists both runs
    code, out, err = run_cli(capsys, "report", "compare", "--runs", f"{root}/*", "--show", "rankings",
                             "--format", "csv")
    assert code == 0, err
    code, out, err = run_cli(capsys, "report", "export", s3_runs[1], "--root", root, "--out", tmp_path / "x")
    assert code == 0, err
    assert (tmp_path / "x" / "metrics.csv").exists()


def test_html_is_written_into_the_bucket(s3_runs, aws_env, capsys):
    import pyarrow.fs as pafs

    uri = f"s3://{BUCKET}/reports/{s3_runs[1]}"
    code, out, err = run_cli(capsys, "report", "html", uri)
    assert code == 0, err
    assert out.strip() == f"{uri}/report.html"
    s3, path = pafs.FileSystem.from_uri(f"{uri}/report.html")
    with s3.open_input_stream(path) as stream:
        page = stream.read().decode()
    assert page.startswith("<!DOCTYPE html>") and s3_runs[1] in page
    assert compare_runs(uri, uri, metric="ndcg", k=10)["delta"].abs().max() == 0


def test_unknown_run_under_an_s3_root_lists_the_runs(s3_runs, aws_env, capsys):
    code, out, err = run_cli(capsys, "report", "show", "nope", "--root", f"s3://{BUCKET}/reports")
    assert code == 2 and "no run 'nope'" in err and s3_runs[0] in err and s3_runs[1] in err
