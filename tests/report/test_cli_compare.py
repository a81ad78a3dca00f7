"""`recsys report compare` on run directories whose metrics and comparisons rows were written by hand."""

from __future__ import annotations

import json

import pytest

from recsys.cli import main
from recsys.report.writer import RunWriter


def write_evaluated_run(root, run_id, values: dict[str, dict[str, float]], tests: list[tuple], config=None):
    """A run with ``metrics`` (model -> segment -> NDCG@10) and ``comparisons`` rows, and no rankings."""
    with RunWriter(root / run_id, run_id=run_id, config=config or {}) as run:
        run.write("metrics", [{"dataset": "synthetic", "model": model, "split": "test", "protocol": "full",
                               "segment": segment, "metric": "ndcg", "k": 10, "value": value,
                               "ci_low": value - 0.01, "ci_high": value + 0.01, "n_users": 50}
                              for model, segments in values.items() for segment, value in segments.items()])
        run.write("comparisons", [{"dataset": "synthetic", "split": "test", "protocol": "full", "segment": segment,
                                   "baseline": "pop", "candidate": "mf", "metric": "ndcg", "k": 10, "delta": delta,
                                   "p_value": p, "p_adjusted": p, "test": "paired_t"} for segment, delta, p in tests])
    return root / run_id


@pytest.fixture
def evaluated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    values = {"pop": {"all": 0.10, "cold_start_users": 0.12}, "mf": {"all": 0.20, "cold_start_users": 0.13}}
    tests = [("all", 0.10, 0.0001), ("cold_start_users", 0.01, 0.4)]
    return write_evaluated_run(tmp_path / "reports", "20260101-000000-aaaaaa", values, tests,
                               config={"eval": {"alpha": 0.05}, "compare": {"max_lines": 3}})


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_compare_computes_rankings_and_lines_for_a_run_without_them(evaluated, capsys):
    code, out, err = run_cli(capsys, "report", "compare")
    assert code == 0, err
    assert "run 20260101-000000-aaaaaa has no rankings table; computed from its metrics and comparisons" in err
    assert "rankings by ndcg@10, segment all, test split:" in out
    assert ("20260101-000000-aaaaaa [synthetic] mf beats pop overall by 0.10 NDCG@10 (p<0.001) "
            "but not significantly on cold-start users (+0.01, p=0.4)") in out
    assert ("[synthetic] pop does best on cold-start users: 0.12 NDCG@10 against 0.10 overall "
            "(95% CI 0.11 to 0.13)") in out


def test_computed_lines_follow_the_run_s_own_settings(tmp_path, capsys):
    values = {"pop": {"all": 0.10}, "mf": {"all": 0.20}}
    tests = [("all", 0.10, 0.0001), ("cold_start_users", 0.01, 0.4)]
    strict = write_evaluated_run(tmp_path, "strict", values, tests, config={"eval": {"alpha": 0.00001}})
    code, out, _ = run_cli(capsys, "report", "compare", "--runs", str(strict), "--show", "insights")
    assert code == 0 and "none: no significant trade-off" in out


def test_compare_as_csv_and_json_one_part_at_a_time(evaluated, capsys):
    code, out, _ = run_cli(capsys, "report", "compare", "--show", "rankings", "--format", "csv")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "run_id,dataset,protocol,model,rank,n_models,value,ci_low,ci_high"
    assert [line.split(",")[3:6] for line in lines[1:]] == [["mf", "1", "2"], ["pop", "2", "2"]]
    code, out, _ = run_cli(capsys, "report", "compare", "--show", "rankings", "--segment", "cold_start_users",
                           "--format", "json")
    assert [(r["model"], r["rank"]) for r in json.loads(out)] == [("mf", 1), ("pop", 2)]
    code, out, _ = run_cli(capsys, "report", "compare", "--show", "insights", "--format", "json")
    assert [r["kind"] for r in json.loads(out)] == ["tradeoff", "best_segment", "worst_segment"]


def test_compare_mistakes_end_with_one_line(evaluated, tmp_path, capsys):
    code, _, err = run_cli(capsys, "report", "compare", "--format", "csv")
    assert code == 2 and "--show rankings or --show insights" in err
    code, _, err = run_cli(capsys, "report", "compare", "--metric", "ndcg@ten")
    assert code == 2 and "cannot read metric 'ndcg@ten'" in err
    with RunWriter(tmp_path / "bare" / "r1", run_id="r1") as run:
        run.mark_stage_done("prepare")
    code, _, err = run_cli(capsys, "report", "compare", "--runs", str(tmp_path / "bare"))
    assert code == 2 and "no selected run has metrics" in err
