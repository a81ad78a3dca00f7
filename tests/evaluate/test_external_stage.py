"""Lists written from trained models' own top-k, in every format, evaluate to the models' own numbers.

A small synthetic run trains pop and mf (local engine); the evaluate stage writes their
top-k lists (the ``recommendations`` table); those lists go back in through
``eval.external`` as Parquet, CSV, TSV and TREC files and are evaluated next to the
models. Every metric, segment and comparison must match the model's, AUC excepted.
"""

from __future__ import annotations

import polars as pl
import pytest
import torch

from rayjobs._common import compose
from recsys.data.prepare import prepare
from recsys.evaluate.external_files import ExternalListConfig
from recsys.evaluate.stage import stage_evaluate
from recsys.report.reader import load_tables
from recsys.report.writer import RunWriter
from recsys.run_state import RunState
from recsys.train.stage import stage_train

TINY = ["dataset.synthetic.n_users=60", "dataset.synthetic.n_items=40", "dataset.synthetic.n_topics=3",
        "dataset.synthetic.mean_interactions_per_user=8", "dataset.synthetic.chunk_users=60",
        "models=[pop,mf]", "model.mf.dim=8", "train.epochs=2", "train.batch_size=64", "train.engine=local",
        "data.engine=local", "eval.engine=local", "eval.bootstrap_samples=50", "eval.k=[5,10]"]
FORMATS = ("parquet", "csv", "tsv", "trec")


def evaluate(root, prepared, models, out, lists=()):
    cfg = compose(TINY + [f"data.cache_dir={root}/cache"])
    cfg.eval.external = list(lists)
    with RunWriter(out, run_id=out.name, config=cfg) as writer:
        run = RunState(cfg=cfg, writer=writer, prepared=prepared, models=dict(models))
        with writer.transaction():
            stage_evaluate(run)
    return run, load_tables(str(out))


def write_list(recs: pl.DataFrame, path, fmt: str) -> None:
    frame = recs.select("user_id", "item_id", "score", "rank")
    if fmt == "parquet":
        frame.write_parquet(path)
    elif fmt in ("csv", "tsv"):
        frame.write_csv(path, separator="\t" if fmt == "tsv" else ",")
    else:
        path.write_text("".join(f"{u} Q0 {i} {r} {float(s)!r} model\n" for u, i, s, r in frame.iter_rows()))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """pop and mf trained and evaluated; then their lists, in every format, evaluated beside them."""
    root = tmp_path_factory.mktemp("external_stage")
    torch.set_num_threads(1)
    cfg = compose(TINY + [f"data.cache_dir={root}/cache", f"train.checkpoint_dir={root}/ck"])
    prepared = prepare(cfg.dataset, cfg.data, cfg.split)
    with RunWriter(root / "train_run", run_id="t", config=cfg) as writer:
        run = RunState(cfg=cfg, writer=writer, prepared=prepared)
        with writer.transaction():
            stage_train(run)
    _, own = evaluate(root, prepared, run.models, root / "own")
    lists = []
    for model in ("pop", "mf"):
        for split in ("val", "test"):
            recs = own["recommendations"].filter((pl.col("model") == model) & (pl.col("split") == split))
            for fmt in FORMATS:
                path = root / f"{model}-{split}.{fmt}"
                write_list(recs.sample(fraction=1.0, shuffle=True, seed=1), path, fmt)
                lists.append(ExternalListConfig(name=f"{model}_{fmt}", path=str(path), split=split))
    both_run, both = evaluate(root, prepared, run.models, root / "both", lists)
    return root, prepared, run.models, own, both, both_run


def _keyed(frame: pl.DataFrame, keys: list[str]) -> dict:
    return {tuple(row[k] for k in keys): row for row in frame.iter_rows(named=True)}


@pytest.mark.parametrize("model", ["pop", "mf"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_models_own_lists_give_its_metrics_in_every_format(evaluated, model, fmt):
    _, _, _, own, both, _ = evaluated
    keys = ["split", "segment", "metric", "k"]
    mine = _keyed(own["metrics"].filter((pl.col("model") == model) & (pl.col("metric") != "auc")), keys)
    listed = _keyed(both["metrics"].filter(pl.col("model") == f"{model}_{fmt}"), keys)
    assert set(listed) == set(mine) and len(mine) > 100                   # every metric, segment, item group
    assert {key[1] for key in mine} >= {"all", "activity_q1", "items_tail"}
    for key, row in mine.items():
        for column in ("value", "ci_low", "ci_high"):
            if row[column] is None:
                assert listed[key][column] is None, (key, column)
            else:
                assert listed[key][column] == pytest.approx(row[column], abs=1e-9), (key, column)
        assert listed[key]["n_users"] == row["n_users"]
    users = ["split", "user_id", "metric", "k"]
    mine_users = _keyed(own["user_metrics"].filter((pl.col("model") == model) & (pl.col("metric") != "auc")), users)
    listed_users = _keyed(both["user_metrics"].filter(pl.col("model") == f"{model}_{fmt}"), users)
    assert set(mine_users) == set(listed_users)
    recs = both["recommendations"]
    assert recs.filter(pl.col("model") == f"{model}_{fmt}").sort("split", "user_id", "rank").select(
        "user_id", "rank", "item_id", "is_relevant").equals(
        own["recommendations"].filter(pl.col("model") == model).sort("split", "user_id", "rank").select(
            "user_id", "rank", "item_id", "is_relevant"))


def test_lists_are_compared_with_the_models_and_counted(evaluated):
    _, _, _, _, both, run = evaluated
    comparisons = both["comparisons"]
    same = comparisons.filter((pl.col("baseline") == "mf") & (pl.col("candidate") == "mf_csv"))
    assert same.height > 0 and (same["delta"].abs() < 1e-12).all()
    against_pop = comparisons.filter((pl.col("baseline") == "pop") & (pl.col("candidate") == "mf_trec")
                                     & (pl.col("segment") == "all") & (pl.col("metric") == "ndcg")
                                     & (pl.col("k") == 10) & (pl.col("split") == "test"))
    reference = comparisons.filter((pl.col("baseline") == "pop") & (pl.col("candidate") == "mf")
                                   & (pl.col("segment") == "all") & (pl.col("metric") == "ndcg")
                                   & (pl.col("k") == 10) & (pl.col("split") == "test"))
    assert against_pop["delta"].item() == pytest.approx(reference["delta"].item(), abs=1e-12)
    assert against_pop["p_value"].item() == pytest.approx(reference["p_value"].item(), abs=1e-9)
    assert "auc" not in set(comparisons.filter(pl.col("candidate") == "mf_trec")["metric"])
    counts = both["external_lists"]
    assert counts.height == 2 * 2 * len(FORMATS) and (counts["status"] == "evaluated").all()
    for column in ("n_unknown_users", "n_unknown_items", "n_duplicate_rows", "n_seen_dropped", "n_missing_users",
                   "n_short_lists", "n_outside_split_users", "n_rank_conflicts"):
        assert (counts[column] == 0).all(), column
    assert (counts["unavailable_metrics"] == "auc").all() and (counts["k"] == 10).all()
    assert set(run.evaluation.rows) == {"pop", "mf", *(f"{m}_{f}" for m in ("pop", "mf") for f in FORMATS)}


def test_a_list_for_test_only_beside_no_models(evaluated, tmp_path):
    root, prepared, _, own, _, _ = evaluated
    path = root / "mf-test.csv"
    run, tables = evaluate(root, prepared, {}, tmp_path / "alone", [ExternalListConfig("prod", str(path))])
    assert set(tables["metrics"]["split"]) == {"test"} and set(tables["metrics"]["model"]) == {"prod"}
    assert tables["comparisons"].height == 0
    assert list(run.evaluation.rows["prod"]) == ["test"]
    counts = tables["external_lists"].sort("split")
    assert counts.select("split", "status", "path").rows() == [("test", "evaluated", str(path)),
                                                               ("val", "no list given for this split", "")]
    own_ndcg = own["metrics"].filter((pl.col("model") == "mf") & (pl.col("split") == "test")
                                     & (pl.col("segment") == "all") & (pl.col("metric") == "ndcg"))
    ndcg = tables["metrics"].filter((pl.col("segment") == "all") & (pl.col("metric") == "ndcg"))
    assert ndcg.sort("k")["value"].to_list() == pytest.approx(own_ndcg.sort("k")["value"].to_list(), abs=1e-12)


def test_cli_evaluates_lists_on_a_prepared_dataset_into_a_report_that_report_show_reads(evaluated, tmp_path,
                                                                                           capsys):
    from recsys.cli import main

    root, prepared, _, own, _, _ = evaluated
    out = tmp_path / "cli"
    code = main(["evaluate", "--lists", f"mf={root / 'mf-test.parquet'}", "--lists", str(root / "pop-test.trec"),
                 "--dataset", str(prepared.path), "--k", "5", "10", "--out", str(out), "--bootstrap-samples", "50"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "NDCG@10" in printed.out and f"report: {out}" in printed.out
    assert main(["report", "show", str(out)]) == 0
    summary = capsys.readouterr().out
    lines = {line.split()[0]: line for line in summary.splitlines() if line.strip()}
    assert "succeeded" in lines["status"] and "external_lists" in lines
    assert "mf" in lines["models"] and "pop-test" in lines["models"], lines["models"]
    assert main(["report", "show", str(out), "external_lists", "--format", "csv"]) == 0
    assert "pop-test" in capsys.readouterr().out
    tables = load_tables(str(out))
    assert set(tables["metrics"]["model"]) == {"mf", "pop-test"} and set(tables["metrics"]["split"]) == {"test"}
    key = (pl.col("split") == "test") & (pl.col("segment") == "all") & (pl.col("metric") == "ndcg") & (pl.col("k") == 10)
    assert tables["metrics"].filter(key & (pl.col("model") == "mf"))["value"].item() == pytest.approx(
        own["metrics"].filter(key & (pl.col("model") == "mf"))["value"].item(), abs=1e-12)
    assert tables["comparisons"].height > 0 and tables["datasets"].height > 0
    assert main(["report", "html", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "Lists from outside" in page and "pop-test" in page and "n_missing_users" in page


def test_cli_refuses_a_bad_list_with_one_line_and_writes_no_report(evaluated, tmp_path, capsys):
    from recsys.cli import main

    root, prepared, _, _, _, _ = evaluated
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,score\nu,i,NaN\n")
    out = tmp_path / "never"
    code = main(["evaluate", "--lists", str(bad), "--dataset", str(prepared.path), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "column 'score'" in err and str(bad) in err
    assert not out.exists()
    assert main(["evaluate", "--lists", str(bad), "--dataset", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err
