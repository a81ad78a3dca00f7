"""`recsys report` on real pipeline runs: every table queryable across two runs, run-vs-run comparison
checked against scipy, show with filters, export, and the HTML report the pipeline writes."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import polars as pl
import pytest
from scipy import stats

from recsys.cli import main
from recsys.report.diff import compare_runs
from recsys.report.reader import load_tables, query
from recsys.report.schema import TABLES

pytestmark = pytest.mark.ray

DOCS = Path(__file__).resolve().parents[2] / "docs" / "report.md"


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _run_id(run_dir: Path) -> str:
    return load_tables(run_dir)["runs"]["run_id"].item()


@pytest.fixture(scope="module")
def two_runs(demo_run, second_run, tmp_path_factory):
    """Both runs under one root by run id, as `reports/*` holds them (symlinks to the run directories)."""
    root = tmp_path_factory.mktemp("reports")
    for run in (demo_run, second_run):
        (root / _run_id(run)).symlink_to(run, target_is_directory=True)
    return root


def test_every_documented_table_is_queryable_over_two_runs(demo_run, second_run):
    documented = re.findall(r"^### (\w+)$", DOCS.read_text(), flags=re.M)
    assert set(documented) == set(TABLES)
    runs = [str(demo_run), str(second_run)]
    ids = {_run_id(demo_run), _run_id(second_run)}
    for table in documented:
        both = query(f"SELECT run_id, COUNT(*) AS n FROM {table} GROUP BY run_id", runs)
        alone = [query(f"SELECT COUNT(*) AS n FROM {table}", str(run))["n"].item() for run in (demo_run, second_run)]
        assert both["n"].sum() == sum(alone), table
        assert set(both["run_id"]) <= ids, table
        assert query(f"SELECT * FROM {table} LIMIT 0", runs).columns == TABLES[table].names
    # The pipeline's tables hold rows of both runs where both ran the stage.
    for table in ("runs", "datasets", "metrics", "user_metrics", "recommendations", "comparisons", "curves"):
        assert set(query(f"SELECT DISTINCT run_id FROM {table}", runs)["run_id"]) == ids, table
    for table in ("findings", "feature_importance", "embedding_health", "rankings", "insights", "grad_stats"):
        assert query(f"SELECT COUNT(*) AS n FROM {table}", str(demo_run))["n"].item() > 0, table


def test_a_query_joins_and_aggregates_across_the_two_runs(two_runs, capsys):
    code, out, err = run_cli(capsys, "report", "query",
                             "SELECT r.run_id, m.model, m.value FROM metrics m JOIN runs r ON m.run_id = r.run_id "
                             "WHERE m.metric = 'ndcg' AND m.k = 10 AND m.segment = 'all' AND m.split = 'test' "
                             "ORDER BY r.run_id, m.model", "--runs", f"{two_runs}/*", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert len({r["run_id"] for r in rows}) == 2
    assert {r["model"] for r in rows} == {"pop", "mf", "two_tower"}


def test_compare_two_runs_matches_scipy_on_the_shared_users(demo_run, second_run):
    deltas = compare_runs(demo_run, second_run, metric="ndcg", k=10)
    assert set(deltas["model"]) == {"pop", "mf", "two_tower"}
    both = deltas.filter(pl.col("model").is_in(["pop", "mf"]))
    assert both["delta"].to_list() == pytest.approx((both["value_b"] - both["value_a"]).to_list())
    assert deltas.filter(pl.col("model") == "two_tower")["value_b"].to_list() == [None]   # only in run A
    users = [load_tables(run)["user_metrics"].filter((pl.col("model") == "mf") & (pl.col("metric") == "ndcg")
                                                     & (pl.col("k") == 10) & (pl.col("split") == "test"))
             for run in (demo_run, second_run)]
    paired = users[0].join(users[1], on="user_id", suffix="_b").drop_nulls(["value", "value_b"])
    reference = stats.ttest_rel(paired["value_b"].to_numpy(), paired["value"].to_numpy())
    mf = deltas.filter(pl.col("model") == "mf").row(0, named=True)
    assert mf["n_paired"] == paired.height > 20
    assert mf["p_value"] == pytest.approx(reference.pvalue, rel=1e-9)
    assert mf["test"] == "paired_t" and mf["p_adjusted"] >= mf["p_value"]
    reverse = compare_runs(second_run, demo_run, metric="ndcg", k=10).filter(pl.col("model") == "mf")
    assert reverse["delta"].item() == pytest.approx(-mf["delta"])


def test_compare_cli_by_run_id(two_runs, demo_run, second_run, capsys):
    a, b = _run_id(demo_run), _run_id(second_run)
    code, out, err = run_cli(capsys, "report", "compare", a, b, "--root", two_runs, "--metric", "recall@10",
                             "--format", "csv")
    assert code == 0, err
    table = list(csv.DictReader(io.StringIO(out)))
    assert {r["metric"] for r in table} == {"recall"} and {r["model"] for r in table} == {"pop", "mf", "two_tower"}
    by_model = {r["model"]: r for r in table}
    assert by_model["mf"]["p_value"] and by_model["two_tower"]["value_b"] == ""
    assert (by_model["pop"]["delta"], by_model["pop"]["p_value"]) == ("0.0", "")   # identical lists: no test
    code, out, err = run_cli(capsys, "report", "compare", demo_run, second_run, "--metric", "ndcg@10")
    assert code == 0 and "delta = B - A" in out and "n_paired" in out
    code, out, err = run_cli(capsys, "report", "compare", a, "--root", two_runs)
    assert code == 2 and "compare takes two runs (or none), got 1" in err
    code, out, err = run_cli(capsys, "report", "compare", a, "20990101-000000-000000", "--root", two_runs)
    assert code == 2 and "no run '20990101-000000-000000'" in err and a in err and b in err


def test_show_a_table_with_filters(demo_run, capsys):
    code, out, err = run_cli(capsys, "report", "show", demo_run, "metrics", "--where",
                             "model = 'mf' AND metric = 'ndcg' AND k = 10", "--filter", "segment=all",
                             "--filter", "split=test", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["model"], r["segment"], r["split"]) for r in rows] == [("mf", "all", "test")]
    code, out, _ = run_cli(capsys, "report", "show", demo_run, "--table", "findings", "--columns",
                           "model,code,severity", "--format", "csv")
    assert code == 0 and out.splitlines()[0] == "model,code,severity" and len(out.splitlines()) > 1


def test_show_finds_a_run_by_id_under_root(two_runs, demo_run, capsys, monkeypatch):
    monkeypatch.chdir(two_runs.parent)
    code, out, err = run_cli(capsys, "report", "show", _run_id(demo_run), "--root", two_runs.name)
    assert code == 0, err
    assert f"run        {_run_id(demo_run)}" in out and "models     mf,pop,two_tower" in out


def test_export_writes_every_table_with_rows(demo_run, tmp_path, capsys):
    code, out, err = run_cli(capsys, "report", "export", demo_run, "--format", "csv", "--out", tmp_path / "csv")
    assert code == 0, err
    tables = load_tables(demo_run)
    written = {p.stem for p in (tmp_path / "csv").iterdir()}
    assert written == {name for name, frame in tables.items() if frame.height}
    assert pl.read_csv(tmp_path / "csv" / "metrics.csv").height == tables["metrics"].height
    code, out, err = run_cli(capsys, "report", "export", demo_run, "--format", "json", "--table", "findings",
                             "--out", tmp_path / "json")
    assert code == 0, err
    findings = json.loads((tmp_path / "json" / "findings.json").read_text())
    assert [f["code"] for f in findings] == tables["findings"]["code"].to_list()
    code, out, _ = run_cli(capsys, "report", "export", demo_run, "--format", "json", "--table", "runs", "--out", "-")
    assert code == 0 and json.loads(out)[0]["status"] == "succeeded"


def test_the_pipeline_writes_the_html_report(demo_run):
    page = (demo_run / "report.html").read_text()
    for title in ("Overview", "Evaluation", "Training", "Diagnosis", "Tuning", "Leaderboard: synthetic",
                  "Metrics by segment: synthetic", "Significance: synthetic", "Gradients: two_tower",
                  "Feature importance: two_tower [synthetic]", "Embedding health", "No tuning trials in this run"):
        assert title in page, title
    assert page.count("<svg") >= 8
    # nothing is fetched: no external scripts, styles, images or links (xmlns names are not fetched)
    assert not re.search(r"""(src|href)=["']?(https?:)?//|@import|url\((?!#)""", page)


def test_html_command_rebuilds_the_report(demo_run, tmp_path, capsys):
    out_file = tmp_path / "page.html"
    code, out, err = run_cli(capsys, "report", "html", demo_run, "--out", out_file)
    assert code == 0, err
    assert out.strip().endswith("page.html") and out_file.read_text().startswith("<!DOCTYPE html>")
