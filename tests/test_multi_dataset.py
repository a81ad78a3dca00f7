"""Several datasets in one run (``datasets=[...]``), and the compare stage that ranks models across them."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import polars as pl
import pytest
from hydra.errors import ConfigCompositionException

from rayjobs._common import compose
from recsys.cli import main as cli
from recsys.data.config import DatasetConfig
from recsys.errors import ConfigError, DataError
from recsys.evaluate.compare import CONSOLE_LINES_PER_KIND
from recsys.evaluate.crossdata import CompareConfig, compare_run
from recsys.pipeline import RUN_STAGES, STAGES, run_stages
from recsys.report.reader import load_tables
from tests.embed.fixtures import save_tiny_bert

SMALL = ("{name:synthetic,label:small,synthetic:{n_users:80,n_items:50,n_topics:3,mean_interactions_per_user:10,"
         "chunk_users:80,seed:1}}")
LARGE = ("{name:synthetic,label:large,synthetic:{n_users:120,n_items:70,n_topics:3,mean_interactions_per_user:12,"
         "chunk_users:120,seed:2}}")
FAST = ["models=[pop,mf]", "model.mf.dim=8", "train.epochs=2", "train.engine=local", "data.engine=local",
        "eval.engine=local", "eval.bootstrap_samples=50"]
STAGES_RUN = ["prepare", "embed", "train", "evaluate", "diagnose", "compare"]


def overrides(root: Path, *more: str) -> list[str]:
    return [*FAST, f"data.cache_dir={root}/cache", f"report.dir={root}/run", *more]


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory, ray_session):
    """One run over two small synthetic datasets of different sizes and seeds (tiny random BERT for the text)."""
    root = tmp_path_factory.mktemp("two_datasets")
    bert = save_tiny_bert(root / "bert")
    cfg = compose(overrides(root, f"datasets=[{SMALL},{LARGE}]", "encoder.engine=local", f"encoder.path={bert}",
                            "encoder.max_length=32"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        report = run_stages(cfg, STAGES_RUN)
    return cfg, report, load_tables(str(report)), printed.getvalue()


def test_the_stages_split_into_per_dataset_and_run_level_ones():
    assert list(STAGES)[:4] == ["prepare", "embed", "train", "evaluate"]
    assert list(RUN_STAGES) == ["compare"] and not set(STAGES) & set(RUN_STAGES)


@pytest.mark.ray
def test_two_datasets_write_rows_for_each_into_one_report(two_datasets):
    cfg, report, tables, _ = two_datasets
    run = tables["runs"].row(0, named=True)
    assert run["status"] == "succeeded"
    assert json.loads(run["stages"]) == [f"{s}:{d}" for d in ("small", "large") for s in STAGES_RUN[:-1]] + ["compare"]
    assert len(json.loads(run["config"])["datasets"]) == 2
    for table in ("datasets", "embedding_health", "curves", "metrics", "comparisons", "rankings"):
        assert set(tables[table]["dataset"]) == {"small", "large"}, table
    loaded = dict(tables["datasets"].filter(pl.col("stage") == "loaded").select("dataset", "n_users").iter_rows())
    assert loaded == {"small": 80, "large": 120}
    for dataset in ("small", "large"):                # each dataset's models are kept apart
        for model in ("pop", "mf"):
            assert (report / "checkpoints" / dataset / model / "best_model.pt").exists()
        models = tables["metrics"].filter(pl.col("dataset") == dataset)["model"]
        assert set(models) == {"pop", "mf"}
    findings = {d: set(tables["findings"].filter(pl.col("dataset") == d)["message"]) for d in ("small", "large")}
    assert findings["small"] and not findings["small"] <= findings["large"]   # large's diagnosis judged only large


@pytest.mark.ray
def test_rankings_rank_every_metrics_row_by_its_group(two_datasets):
    _, _, tables, _ = two_datasets
    keys = ["dataset", "split", "protocol", "segment", "metric", "k", "model"]
    metrics, rankings = tables["metrics"], tables["rankings"]
    assert rankings.height == metrics.height
    joined = metrics.join(rankings, on=keys, how="inner", nulls_equal=True, suffix="_ranked")
    assert joined.height == metrics.height
    assert joined.filter(pl.col("value") != pl.col("value_ranked")).is_empty()
    lower_is_better = {"gini", "popularity", "test_popularity"}
    groups: dict[tuple, list[tuple[str, float | None, int | None]]] = {}
    for row in joined.iter_rows(named=True):
        value = row["value"]
        if value is not None and row["metric"] in lower_is_better:
            value = -value
        groups.setdefault(tuple(row[k] for k in keys[:-1]), []).append((row["model"], value, row["rank"]))
    for group in groups.values():                    # an independent count: 1 + models strictly better
        present = [v for _, v, _ in group if v is not None]
        for model, value, rank in group:
            expected = None if value is None else 1 + sum(other > value for other in present)
            assert rank == expected, (group, model)


@pytest.mark.ray
def test_insights_are_the_comparison_of_the_stored_rows_and_are_printed(two_datasets):
    cfg, _, tables, printed = two_datasets
    again = compare_run(tables["metrics"].drop("run_id"), tables["comparisons"].drop("run_id"), cfg.compare,
                        alpha=cfg.eval.alpha, confidence=cfg.eval.confidence)
    stored = tables["insights"].drop("run_id")
    assert stored.height > 0 and stored.equals(again.insights)
    assert set(stored["dataset"]) <= {"small", "large", None}
    tradeoffs = stored.filter(pl.col("kind") == "tradeoff")
    assert (tradeoffs["p_value"] < cfg.eval.alpha).all()
    assert "models compared on large, small (test split, significance: adjusted p < 0.05):" in printed
    shown = [f"[{dataset or 'all datasets'}] {text}" in printed
             for dataset, text in stored.select("dataset", "text").iter_rows()]
    per_group = stored.with_columns(nth=pl.int_range(pl.len()).over("dataset", "kind"))["nth"].to_list()
    assert shown == [nth < CONSOLE_LINES_PER_KIND for nth in per_group]     # the strongest of each kind
    more = shown.count(False)
    assert (f"{more} more line" in printed and "--show insights" in printed) if more else "more line" not in printed


@pytest.mark.ray
def test_report_compare_prints_the_stored_rankings_and_lines(two_datasets, capsys):
    _, report, tables, _ = two_datasets
    assert cli(["report", "compare", "--runs", str(report)]) == 0
    out, err = capsys.readouterr()
    assert "computed" not in err
    assert "shape: (4, 9)" in out and out.count("┆ full ") == 4      # pop and mf per dataset, NDCG@10, all
    first = tables["insights"].row(0, named=True)
    assert f"[{first['dataset']}] {first['text']}" in out


@pytest.mark.ray
def test_a_single_dataset_run_writes_rankings_and_insights_as_well(tmp_path):
    tiny = ["dataset.synthetic.n_users=60", "dataset.synthetic.n_items=40", "dataset.synthetic.n_topics=3",
            "dataset.synthetic.mean_interactions_per_user=8", "dataset.synthetic.chunk_users=60"]
    report = run_stages(compose(overrides(tmp_path, *tiny)), ["prepare", "train", "evaluate", "compare"])
    tables = load_tables(str(report))
    assert json.loads(tables["runs"]["stages"][0]) == ["prepare", "train", "evaluate", "compare"]
    assert set(tables["rankings"]["dataset"]) == {"synthetic"} and tables["rankings"].height == tables["metrics"].height
    assert set(tables["insights"]["dataset"].drop_nulls()) <= {"synthetic"}
    assert (report / "checkpoints" / "mf" / "best_model.pt").exists()    # one dataset: the usual layout


@pytest.mark.ray
def test_compare_without_evaluated_models_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="compare stage found no metrics rows.*run the evaluate stage first"):
        run_stages(compose(overrides(tmp_path, "dataset.synthetic.n_users=40", "dataset.synthetic.n_items=30",
                                     "dataset.synthetic.mean_interactions_per_user=5")),
                   ["prepare", "compare"])
    assert load_tables(str(tmp_path / "run"))["runs"]["status"].to_list() == ["failed"]


@pytest.mark.ray
def test_every_dataset_has_its_diagnosis_section_stored_and_printed_after_compare(two_datasets):
    _, report, tables, printed = two_datasets
    stored = (report / "diagnosis.txt").read_text()
    assert re.findall(r"^== dataset (\S+) ==$", stored, flags=re.M) == ["small", "large"]
    for dataset in ("small", "large"):
        section = stored.split(f"== dataset {dataset} ==\n", 1)[1].split("\n\n== dataset ", 1)[0]
        n = tables["findings"].filter(pl.col("dataset") == dataset).height
        assert section.startswith(f"diagnosis: {n} finding") and "\nmf: " in section
    assert printed.count("== dataset small ==") == 1 and "remedy:" not in printed    # the full text: the file
    for dataset in ("small", "large"):                                            # one line per model
        brief = printed.split(f"== dataset {dataset} ==\n", 1)[1].split("\n\n", 1)[0].splitlines()
        assert brief[0].startswith("diagnosis: ") and any(line.startswith("  mf: ") for line in brief)
    assert f"the full diagnosis (messages, remedies, edits): {report / 'diagnosis.txt'}" in printed
    assert printed.index("== dataset small ==") > printed.index("models compared on")   # after the compare stage


# ---------------------------------------------------------------- bad `datasets` entries


def test_datasets_entries_are_typed_by_hydra():
    cfg = compose([f"datasets=[{SMALL},{{name:movielens,path:some/dir}}]"])
    assert all(isinstance(entry, DatasetConfig) for entry in cfg.datasets)
    assert (cfg.datasets[0].label, cfg.datasets[0].synthetic.n_users, cfg.datasets[1].path) == ("small", 80, "some/dir")
    assert cfg.datasets[1].synthetic.n_users == DatasetConfig().synthetic.n_users     # defaults fill the rest
    with pytest.raises(ConfigCompositionException) as info:
        compose(["datasets=[{name:synthetic,nmae:x}]"])
    assert "nmae" in str(info.value.__cause__)
    with pytest.raises(ConfigCompositionException) as info:
        compose(["datasets=[{name:synthetic,synthetic:{n_users:many}}]"])
    assert "synthetic.n_users" in str(info.value.__cause__) and "many" in str(info.value.__cause__)
    with pytest.raises(ConfigCompositionException):
        compose(["datasets=[synthetic]"])


def test_clashing_or_unusable_labels_fail_before_the_run_starts(tmp_path):
    with pytest.raises(ConfigError, match=r"datasets\[1\].label.*two datasets are called 'synthetic'"):
        run_stages(compose(overrides(tmp_path, "datasets=[{name:synthetic},{name:synthetic}]")))
    with pytest.raises(ConfigError, match=r"datasets\[0\].label.*'my data' is not a plain name"):
        run_stages(compose(overrides(tmp_path, "datasets=[{name:synthetic,label:'my data'}]")))
    with pytest.raises(ConfigError, match="compare.metrics.*cut-off 50"):
        run_stages(compose(overrides(tmp_path, "compare.metrics=[ndcg@50]")))
    assert not (tmp_path / "run").exists()


@pytest.mark.ray
def test_a_missing_source_fails_the_run_before_any_dataset_is_prepared(tmp_path):
    bad = f"{{name:movielens,label:ml,path:{tmp_path}/nowhere}}"
    with pytest.raises(DataError, match=r"setting 'datasets\[1\]': ml: the dataset folder does not exist"):
        run_stages(compose(overrides(tmp_path, f"datasets=[{{name:synthetic}},{bad}]")))
    tables = load_tables(str(tmp_path / "run"))
    assert tables["runs"]["status"].to_list() == ["failed"] and tables["datasets"].is_empty()


def test_split_files_are_every_entrys_interactions_when_the_sources_are_checked(tmp_path):
    from recsys.data.datasets import check_sources, run_datasets

    (tmp_path / "train.csv").write_text("user_id,item_id,timestamp\nu1,i1,1600000000\nu2,i2,1600000001\n")
    (tmp_path / "test.csv").write_text("user_id,item_id,timestamp\nu1,i2,1600000002\n")
    entries = "datasets=[{name:table,label:a},{name:table,label:b}]"

    def check(test_file: str) -> None:
        cfg = compose([entries, "split.protocol=given",
                       f"split.files={{train:{tmp_path}/train.csv,test:{tmp_path}/{test_file}}}"])
        check_sources(run_datasets(cfg.dataset, cfg.datasets), cfg.split)

    check("test.csv")                        # no dataset.interactions needed: split.files names them
    with pytest.raises(DataError, match=r"nowhere.csv, setting 'split.files.test': a: file not found"):
        check("nowhere.csv")
