"""`recsys report list | show | query` through main([...]), on real run directories."""

from __future__ import annotations

import csv
import io
import json

import pytest

from recsys.cli import main
from recsys.report.schema import TABLES
from recsys.report.writer import RunWriter


def write_run(root, run_id, metrics, *, fail=False):
    try:
        with RunWriter(root / run_id, run_id=run_id, config={"dataset": {"name": "synthetic"}}) as run:
            run.write("datasets", [{"dataset": "synthetic", "stage": "train", "n_rows": 80, "n_users": 10,
                                    "n_items": 20}])
            run.mark_stage_done("prepare")
            run.write("metrics", [{"dataset": "synthetic", "model": model, "split": "test", "segment": "all",
                                   "metric": "ndcg", "k": 10, "value": value, "n_users": 10}
                                  for model, value in metrics.items()])
            if fail:
                raise MemoryError("out of memory in train")
    except MemoryError:
        pass


@pytest.fixture
def reports(tmp_path, monkeypatch):
    """Two runs under ./reports, the default --runs location."""
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / "reports", "20260101-000000-aaaaaa", {"pop": 0.125, "mf": 0.25})
    write_run(tmp_path / "reports", "20260102-000000-bbbbbb", {"pop": 0.5}, fail=True)
    return tmp_path / "reports"


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_run(reports, capsys):
    code, out, err = run_cli(capsys, "report", "list")
    assert (code, err) == (0, "")
    assert "20260101-000000-aaaaaa" in out and "20260102-000000-bbbbbb" in out
    assert "succeeded" in out and "failed" in out
    assert "MemoryError: out of memory in train" in out
    assert "reports/20260101-000000-aaaaaa" in out


def test_list_as_json(reports, capsys):
    code, out, _ = run_cli(capsys, "report", "list", "--format", "json")
    rows = json.loads(out)
    assert code == 0
    assert [(r["run_id"], r["status"], r["stages"]) for r in rows] == [
        ("20260101-000000-aaaaaa", "succeeded", "prepare"),
        ("20260102-000000-bbbbbb", "failed", "prepare"),
    ]


def test_query_prints_a_table_across_runs(reports, capsys):
    code, out, err = run_cli(capsys, "report", "query",
                             "SELECT run_id, model, value FROM metrics ORDER BY value DESC")
    assert (code, err) == (0, "")
    assert "shape: (3, 3)" in out
    lines = [line for line in out.splitlines() if "2026" in line]
    assert ["0.5" in lines[0], "0.25" in lines[1], "0.125" in lines[2]] == [True, True, True]


def test_query_as_csv(reports, capsys):
    code, out, _ = run_cli(capsys, "report", "query", "SELECT model, value FROM metrics ORDER BY value",
                           "--format", "csv")
    assert code == 0
    assert list(csv.reader(io.StringIO(out))) == [["model", "value"], ["pop", "0.125"], ["mf", "0.25"], ["pop", "0.5"]]


def test_query_as_json_with_limit(reports, capsys):
    code, out, _ = run_cli(capsys, "report", "query", "SELECT model, value FROM metrics ORDER BY value",
                           "--format", "json", "--limit", "2")
    assert code == 0
    assert json.loads(out) == [{"model": "pop", "value": 0.125}, {"model": "mf", "value": 0.25}]


def test_table_output_says_when_rows_were_cut(reports, capsys):
    code, out, err = run_cli(capsys, "report", "query", "SELECT * FROM metrics", "--limit", "1")
    assert code == 0 and "shape: (1, 12)" in out
    assert "showing 1 of 3 rows" in err


def test_wide_tables_keep_every_column(reports, capsys):
    code, out, _ = run_cli(capsys, "report", "query", "SELECT * FROM datasets")
    assert code == 0
    for column in TABLES["datasets"].names:
        assert column in out
    assert "…" not in out


def test_query_with_explicit_runs(reports, capsys):
    code, out, _ = run_cli(capsys, "report", "query", "SELECT COUNT(*) AS n FROM metrics",
                           "--runs", str(reports / "*-aaaaaa"), "--format", "csv")
    assert (code, out) == (0, "n\n2\n")


def test_show_summarises_one_run(reports, capsys):
    code, out, err = run_cli(capsys, "report", "show", "reports/20260102-000000-bbbbbb")
    assert (code, err) == (0, "")
    assert "status     failed" in out
    assert "error      MemoryError: out of memory in train" in out
    assert "stages     prepare" in out
    assert "metrics                 1" in out and "datasets                1" in out
    assert "trials                  0" in out
    assert '"name": "synthetic"' in out          # the config, as JSON


def test_show_one_table(reports, capsys):
    code, out, _ = run_cli(capsys, "report", "show", "reports/20260101-000000-aaaaaa", "--table", "metrics",
                           "--format", "csv")
    assert code == 0
    assert [row[5] for row in csv.reader(io.StringIO(out))][1:] == ["all", "all"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "query", "SELECT model, ndcg FROM metrics"],
         "the SQL query failed: unable to find column \"ndcg\""),
        (["report", "query", "SELEC * FROM metrics"], "sql parser error"),
        (["report", "query", "SELECT 1", "--runs", "nowhere/*"], "no report runs match 'nowhere/*'"),
        (["report", "list", "--runs", "nowhere"], "nowhere: the report directory does not exist"),
        (["report", "show", "reports"], "one run is needed, but 'reports' selects 2"),
        (["report", "show", "reports/20260101-000000-aaaaaa", "--table", "metric"],
         "unknown report table 'metric'"),
    ],
)
def test_errors_print_one_line_and_exit_2(reports, capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("recsys: error: ") and err.count("\n") == 1
    assert message in err
    assert "Traceback" not in err


def test_bad_sql_lists_tables_and_columns(reports, capsys):
    _, _, err = run_cli(capsys, "report", "query", "SELECT model, ndcg FROM metrics")
    assert "tables: runs, datasets, metrics" in err
    assert "metrics(run_id, dataset, model, split, protocol, segment, metric, k, value, ci_low, ci_high, n_users)" in err


def test_no_runs_under_the_default_location(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "report", "list")
    assert code == 2 and out == ""
    assert "no report runs match 'reports/*'" in err


@pytest.mark.parametrize("argv", [[], ["report"], ["report", "nonsense"], ["report", "query", "X", "--limit", "-1"]])
def test_usage_errors_exit_2(argv, capsys):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert "usage: recsys" in err


def test_help_exits_0(capsys):
    code, out, _ = run_cli(capsys, "report", "query", "--help")
    assert code == 0 and "--runs GLOB" in out
