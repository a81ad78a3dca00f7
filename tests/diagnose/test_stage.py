"""The diagnose stage on a small trained run: tables, findings, the summary file, nothing on failure."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
import torch

from rayjobs._common import compose
from recsys.diagnose.stage import SUMMARY_FILE, diagnose_run
from recsys.errors import ConfigError, DataError
from recsys.pipeline import RunState, run_stages, stage_prepare
from recsys.embed.stage import stage_embed
from recsys.evaluate.stage import stage_evaluate
from recsys.report.reader import load_tables
from recsys.report.writer import RunWriter
from recsys.train.stage import stage_train
from tests.embed.fixtures import save_tiny_bert

TINY = ["dataset.synthetic.n_users=60", "dataset.synthetic.n_items=40", "dataset.synthetic.n_topics=3",
        "dataset.synthetic.mean_interactions_per_user=8", "dataset.synthetic.chunk_users=60",
        "model.mf.dim=8", "model.two_tower.dim=8", "model.two_tower.width=16", "models=[pop,mf,two_tower]",
        "train.epochs=2", "train.batch_size=64", "train.engine=local", "train.probe_every=2", "train.log_every=2",
        "data.engine=local", "encoder.engine=local", "encoder.name=tiny", "encoder.max_length=32",
        "eval.engine=local", "eval.bootstrap_samples=200", "diagnose.importance.bootstrap_samples=200"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished run (prepare, embed, train, evaluate) and its config."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("diagnose-stage")
    bert = save_tiny_bert(root / "bert")
    cfg = compose(TINY + [f"encoder.path={bert}", f"data.cache_dir={root}/cache", f"report.dir={root}/run"])
    with RunWriter(root / "run", run_id="r1", config=cfg) as writer:
        run = RunState(cfg=cfg, writer=writer)
        for name, stage in (("prepare", stage_prepare), ("embed", stage_embed), ("train", stage_train),
                            ("evaluate", stage_evaluate)):
            with writer.transaction():
                stage(run)
            writer.mark_stage_done(name)
    return root / "run", cfg, run.prepared


def files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file() and "runs" not in p.parts}


def test_a_failing_diagnosis_publishes_nothing(trained_run):
    run_dir, cfg, prepared = trained_run
    before = files(run_dir)
    bad = replace(cfg, diagnose=replace(cfg.diagnose, disabled_rules=["no_such_rule"]))
    with pytest.raises(ConfigError, match="no_such_rule"):            # refused before the run is touched
        diagnose_run(run_dir, bad, prepared=prepared)
    stages = json.loads(load_tables(str(run_dir))["runs"].row(0, named=True)["stages"])
    if "diagnose" in stages:
        return                                                        # diagnosed already by the other test
    models = {"mf": run_dir / "checkpoints" / "mf" / "best_model.pt", "two_tower": run_dir / "missing.pt"}
    with pytest.raises(DataError, match="no trained model"):          # fails inside the stage's transaction
        diagnose_run(run_dir, cfg, prepared=prepared, models=models)
    assert files(run_dir) == before
    run = load_tables(str(run_dir))["runs"].row(0, named=True)
    assert run["status"] == "failed" and "diagnose" not in json.loads(run["stages"])


def test_the_stage_writes_importance_health_findings_and_the_summary(trained_run, capsys):
    run_dir, cfg, prepared = trained_run
    result = diagnose_run(run_dir, cfg, prepared=prepared)
    tables = load_tables(str(run_dir))
    run = tables["runs"].row(0, named=True)
    assert run["status"] == "succeeded" and json.loads(run["stages"])[-1] == "diagnose"

    fi = tables["feature_importance"]
    assert set(fi["model"]) == {"mf", "two_tower"}                    # the baseline is not measured
    groups = fi.filter(pl.col("feature_group").is_null() & (pl.col("method") == "ablation"))
    assert set(groups.filter(pl.col("model") == "two_tower")["feature"]) == {"text", "item_id", "history_length"}
    assert set(groups.filter(pl.col("model") == "mf")["feature"]) == {"item_id", "user_id"}
    fields = fi.filter(pl.col("feature_group") == "text_field")
    assert set(fields["feature"]) == {"genres", "description"} and set(fields["model"]) == {"two_tower"}
    measured = fi.filter(pl.col("method") != "grad_x_input")
    assert (measured["split"] == "val").all() and (measured["metric"] == "ndcg").all() and (measured["k"] == 10).all()
    assert (measured["ci_low"] <= measured["drop"] + 1e-12).all() and (measured["drop"] <= measured["ci_high"] + 1e-12).all()
    grads = fi.filter(pl.col("method") == "grad_x_input")
    assert set(zip(grads["model"], grads["feature"])) == {("mf", "item_id"), ("mf", "user_id"),
                                                          ("two_tower", "text"), ("two_tower", "item_id")}

    health = tables["embedding_health"]
    pairs = set(zip(health["model"], health["embedding"]))
    assert {("mf", "output"), ("mf", "item_id"), ("mf", "user_id"), ("two_tower", "output"),
            ("two_tower", "item_id"), ("text_encoder", "item_text")} <= pairs
    assert "pop" not in set(health["model"])

    findings = tables["findings"]
    assert findings.height == len(result.findings)
    assert "pop" not in set(findings["model"].drop_nulls())
    summary = (run_dir / SUMMARY_FILE).read_text()
    assert summary == result.section + "\n"                          # the run's one dataset, one section
    assert summary.startswith(f"== dataset {prepared.name} ==\ndiagnosis: {len(result.findings)} finding")
    assert "mf:" in summary and "two_tower:" in summary and "pop:" not in summary
    assert capsys.readouterr().out.count(result.section) == 1        # diagnose_run prints it, once
    with pytest.raises(ConfigError, match="diagnosed already"):
        diagnose_run(run_dir, cfg, prepared=prepared)


def test_a_report_file_appears_with_its_transaction_or_not_at_all(tmp_path):
    with RunWriter(tmp_path / "run", run_id="r") as writer:
        with pytest.raises(RuntimeError):
            with writer.transaction():
                writer.write_text("diagnosis.txt", "draft")
                raise RuntimeError("stage failed")
        assert not (tmp_path / "run" / "diagnosis.txt").exists()
        with writer.transaction():
            writer.write_text("diagnosis.txt", "final")
            assert not (tmp_path / "run" / "diagnosis.txt").exists()
        assert (tmp_path / "run" / "diagnosis.txt").read_text() == "final"
        for bad in ("../x.txt", "_staging", "part-1.parquet", ""):
            with pytest.raises(ConfigError, match="bad report file name"):
                writer.write_text(bad, "x")
    assert not (tmp_path / "run" / "_staging").exists()


@pytest.mark.ray
def test_the_pipeline_runs_diagnose_after_evaluate_and_prints_the_summary(tmp_path, capsys):
    from rayjobs.diagnose import stages_through_diagnose

    bert = save_tiny_bert(tmp_path / "bert")
    cfg = compose(TINY + ["models=[pop,mf]", f"encoder.path={bert}", f"data.cache_dir={tmp_path}/cache",
                          f"report.dir={tmp_path}/run", "diagnose.importance.methods=[ablation]"])
    assert stages_through_diagnose()[-2:] == ["evaluate", "diagnose"]
    report = run_stages(cfg, stages_through_diagnose())
    tables = load_tables(str(report))
    assert json.loads(tables["runs"]["stages"][0])[-2:] == ["evaluate", "diagnose"]
    fi = tables["feature_importance"]
    assert set(zip(fi["feature"], fi["method"])) == {("item_id", "ablation"), ("user_id", "ablation")}
    summary = (report / SUMMARY_FILE).read_text()
    assert summary.startswith("== dataset synthetic ==\ndiagnosis: ")
    out = capsys.readouterr().out                                     # the short form, once, after the last stage
    assert out.count("== dataset synthetic ==") == 1 and "remedy:" not in out
    assert out.split("== dataset synthetic ==\n", 1)[1].startswith(summary.splitlines()[1])   # "diagnosis: N findings"
    assert f"the full diagnosis (messages, remedies, edits): {report / SUMMARY_FILE}" in out
    assert out.index("== dataset synthetic ==") < out.index("succeeded; report tables in")


def test_each_dataset_keeps_its_own_section_of_the_summary_file():
    from recsys.diagnose.stage import merge_sections, summary_section

    small = summary_section("small", "diagnosis: 1 finding\n\nmf: 1 warning\n  WARNING  X")
    text = merge_sections("", "small", small)
    assert text == small
    both = merge_sections(text, "large", summary_section("large", "diagnosis: 0 findings"))
    assert both == small + "\n\n== dataset large ==\ndiagnosis: 0 findings"
    again = merge_sections(both + "\n", "small", summary_section("small", "diagnosis: 2 findings"))
    assert again == "== dataset small ==\ndiagnosis: 2 findings\n\n== dataset large ==\ndiagnosis: 0 findings"


def test_every_importance_and_health_setting_is_documented_with_its_default():
    import re
    from dataclasses import fields as dataclass_fields

    from recsys.diagnose.config import HealthConfig, ImportanceConfig

    doc = (Path(__file__).resolve().parents[2] / "docs" / "diagnosis.md").read_text(encoding="utf-8")
    for section, config in (("importance", ImportanceConfig()), ("health", HealthConfig())):
        for f in dataclass_fields(config):
            found = re.search(rf"^\| `diagnose\.{section}\.{f.name}` \| ([^|]+) \|", doc, flags=re.M)
            assert found, f"diagnose.{section}.{f.name} is not documented"
            shown, default = found.group(1).strip(), getattr(config, f.name)
            if isinstance(default, bool):
                assert shown == str(default).lower(), f.name
            elif isinstance(default, list):
                assert shown == "[" + ", ".join(default) + "]", f.name
            elif default is None:
                assert shown == "null", f.name
            elif isinstance(default, (int, float)):
                assert float(shown) == default, f.name
            else:
                assert shown == default, f.name


def test_impossible_importance_settings_are_named():
    from recsys.diagnose.config import DiagnoseConfig, ImportanceConfig, check_diagnose_config

    with pytest.raises(ConfigError, match="diagnose.importance.groups"):
        check_diagnose_config(DiagnoseConfig(importance=ImportanceConfig(groups=["bert"])))
    with pytest.raises(ConfigError, match="diagnose.importance.max_users"):
        check_diagnose_config(DiagnoseConfig(importance=ImportanceConfig(max_users=0)))
    cfg = compose(["diagnose.importance.methods=[ablation]", "diagnose.health.dead_threshold=0.01"])
    assert cfg.diagnose.importance.methods == ["ablation"] and cfg.diagnose.health.dead_threshold == 0.01


def test_remedies_name_only_settings_the_model_has():
    from recsys.diagnose.finding import Finding
    from recsys.diagnose.remedies import remedy
    from recsys.diagnose.stage import without_missing_settings

    def weak(model):
        return Finding("SEGMENT_WEAKNESS", "warning", {"model": model, "segment": "cold_start_users"}, "weak", {},
                       remedy("give it text", {"param": f"model.{model}.use_text", "op": "enable"},
                              {"param": "train.lr", "op": "scale_range", "factor": 3.0}))

    kept = without_missing_settings([weak("mf"), weak("two_tower")])
    assert [e.param for e in kept[0].remedy.edits] == ["train.lr"]                     # mf has no text path
    assert [e.param for e in kept[1].remedy.edits] == ["model.two_tower.use_text", "train.lr"]
    assert kept[0].remedy.advice == "give it text" and kept[0].message == "weak"
