"""The HTML report built from runs written through RunWriter: sections, escaping, tuning panels, errors."""

from __future__ import annotations

import json
import time

import polars as pl
import pytest

from recsys.cli import main
from recsys.errors import ConfigError, DataError
from recsys.report.html import HTML_NAME, SECTION_TITLES, build_html, write_html
from recsys.report.html.data import load_run
from recsys.report.html.tuning import best_so_far, trials_plots
from recsys.report.writer import RunWriter

HOSTILE = "<script>alert('x')</script>"


def evaluated_run(run_dir, run_id="r1"):
    """A small run: metrics with intervals on two segments, a paired test, curves, gradients, a finding."""
    with RunWriter(run_dir, run_id=run_id, config={"eval": {"alpha": 0.05}}) as run:
        run.write("datasets", [{"dataset": "synthetic", "stage": "train", "n_rows": 100, "n_users": 10,
                                "n_items": 20}])
        run.write("metrics", [{"dataset": "synthetic", "model": model, "split": "test", "protocol": "full",
                               "segment": segment, "metric": "ndcg", "k": 10, "value": value,
                               "ci_low": value - 0.02, "ci_high": value + 0.02, "n_users": 50}
                              for model, base in (("pop", 0.10), ("mf", 0.20))
                              for segment, value in (("all", base), ("activity_q4", base + 0.05))])
        run.write("comparisons", [{"dataset": "synthetic", "split": "test", "protocol": "full", "segment": "all",
                                   "baseline": "pop", "candidate": "mf", "metric": "ndcg", "k": 10, "delta": 0.1,
                                   "p_value": 0.001, "p_adjusted": 0.001, "test": "paired_t",
                                   "correction": "holm"}])
        run.write("curves", [{"model": "mf", "dataset": "synthetic", "step": s, "epoch": s, "name": name,
                              "value": v} for s in range(4)
                             for name, v in (("train/loss", 2.0 - 0.3 * s), ("val/ndcg@10", 0.05 * s))])
        run.write("grad_stats", [{"model": "mf", "dataset": "synthetic", "step": s, "layer": layer,
                                  "grad_norm": g * (s + 1), "weight_norm": 1.0, "update_ratio": 1e-3,
                                  "nan_count": 0, "inf_count": 0}
                                 for s in range(4) for layer, g in (("user.weight", 1e-6), ("item.weight", 10.0))])
        run.write("findings", [{"dataset": "synthetic", "model": "mf", "code": "VANISHING_GRADIENTS",
                                "severity": "warning", "component": "training", "message": f"mf {HOSTILE}",
                                "evidence": {"ratio": 1e-7}, "advice": "raise the init scale",
                                "remedy": [{"param": "train.lr", "op": "scale_range", "factor": 3.0}]},
                               {"dataset": "synthetic", "model": "mf", "code": "POPULARITY_BIAS",
                                "severity": "critical", "component": "model", "message": "too popular"}])
    return run_dir


def test_every_section_is_there_and_table_text_is_escaped(tmp_path):
    page = build_html(evaluated_run(tmp_path / "run"))
    for title in SECTION_TITLES:
        assert f"<h2>{title}</h2>" in page
    assert HOSTILE not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "train.lr: scale_range x3" in page
    # worst finding first
    assert page.index("POPULARITY_BIAS") < page.index("VANISHING_GRADIENTS")
    assert "Gradients: mf" in page and "Metrics by segment: synthetic" in page and "Significance: synthetic" in page
    assert "No tuning trials in this run (the tune stage did not run)." in page
    assert page.count('<div class="finding') == 2


def test_written_into_the_run_directory_atomically(tmp_path):
    run_dir = evaluated_run(tmp_path / "run")
    path = write_html(run_dir)
    assert path == run_dir / HTML_NAME and path.read_text().startswith("<!DOCTYPE html>")
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_tuning_section_from_trials_and_tuned_models(tmp_path, add_tuning_rows):
    run_dir = evaluated_run(tmp_path / "run")
    add_tuning_rows(run_dir)
    page = build_html(run_dir)
    tuning = page[page.index('<section id="tuning">'):]
    assert "12 trials in 2 round(s)" in tuning and "error 1" in tuning
    assert "objective per trial, by round" in tuning and "by originating remedy" in tuning
    assert "Directed vs undirected search" in tuning and "mf:undirected vs mf:directed" in tuning
    assert "Before and after tuning" in tuning and "mf vs mf:directed" in tuning
    assert tuning.count("<svg") >= 4
    assert "UNDERFITTING" in tuning


def test_a_search_without_tuned_models_says_so(tmp_path):
    run_dir = evaluated_run(tmp_path / "run")
    with RunWriter(run_dir, resume=True) as run:
        run.write("trials", [{"round": 0, "trial_id": "t0", "config": {}, "status": "terminated",
                              "objective": 0.2, "mode": "undirected"}])
    page = build_html(run_dir)
    assert "no model was tuned both ways" in page and "no tuned model (&lt;model&gt;:directed) was evaluated" in page


def test_optional_trial_columns_are_drawn_when_present(tmp_path, add_tuning_rows):
    """Columns the trials schema may gain (val_curve, remedies, stop_reason, ...) appear in the panel."""
    run_dir = evaluated_run(tmp_path / "run")
    add_tuning_rows(run_dir)
    data = load_run(run_dir)
    note = {"code": "UNDERFITTING", "edit": "scale_range x3", "param": "train.lr", "before": "[0.001, 0.01]",
            "after": "[0.003, 0.03]", "status": "applied"}
    trials = data.tables["trials"].with_columns(
        val_curve=pl.lit("[0.1, 0.15, 0.18]"), remedies=pl.lit(json.dumps([note])),
        stop_reason=pl.lit("asha"), error=pl.lit(None, pl.String), model_variant=pl.lit("mf:directed"),
        selected=pl.col("trial_id") == "dir-1-2",
        seeded_from=pl.when(pl.col("trial_id") == "dir-1-1").then(pl.lit("baseline")).otherwise(None))
    html = trials_plots(data, trials)
    assert "per-epoch validation NDCG" in html and "asha" in html and "mf:directed" in html
    assert "UNDERFITTING: train.lr [0.001, 0.01] -&gt; [0.003, 0.03] (scale_range x3, applied)" in html
    assert "<th>selected</th>" in html and "<th>seeded_from</th>" in html and ">baseline<" in html


def test_best_so_far_skips_failed_trials():
    assert best_so_far([None, 0.2, 0.1, None, 0.4]) == pytest.approx([float("nan"), 0.2, 0.2, 0.2, 0.4],
                                                                       nan_ok=True)


def test_a_run_without_any_stage_still_renders(tmp_path):
    with RunWriter(tmp_path / "bare", run_id="bare") as run:
        run.mark_stage_done("prepare")
    page = build_html(tmp_path / "bare")
    assert "No evaluation metrics in this run" in page and "No training curves in this run" in page
    assert "No findings" in page


def test_html_for_several_runs_or_none_is_an_error(tmp_path):
    evaluated_run(tmp_path / "reports" / "a", "a")
    evaluated_run(tmp_path / "reports" / "b", "b")
    with pytest.raises(ConfigError, match="covers one run, but .* selects 2"):
        build_html(tmp_path / "reports")
    with pytest.raises(DataError, match="does not exist"):
        build_html(tmp_path / "nowhere")


def test_html_command_by_run_id(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evaluated_run(tmp_path / "reports" / "r1")
    assert main(["report", "html", "r1"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "reports/r1/report.html" and err == ""
    assert main(["report", "html", "r2"]) == 2
    assert "no run 'r2'" in capsys.readouterr().err


def test_builds_quickly(tmp_path, add_tuning_rows):
    run_dir = evaluated_run(tmp_path / "run")
    add_tuning_rows(run_dir)
    build_html(run_dir)                      # imports matplotlib once
    start = time.perf_counter()
    build_html(run_dir)
    assert time.perf_counter() - start < 5


def test_several_datasets_get_a_cross_dataset_plot_and_one_leaderboard_each(tmp_path):
    with RunWriter(tmp_path / "run", run_id="multi") as run:
        run.write("metrics", [{"dataset": dataset, "model": model, "split": "test", "protocol": "full",
                               "segment": "all", "metric": "ndcg", "k": 10, "value": value,
                               "ci_low": value - 0.01, "ci_high": value + 0.01}
                              for dataset, shift in (("small", 0.0), ("large", 0.1))
                              for model, value in (("pop", 0.1 + shift), ("mf", 0.2 - shift))])
    page = build_html(tmp_path / "run")
    assert "Leaderboard: large" in page and "Leaderboard: small" in page
    evaluation = page[page.index('<section id="evaluation">'):page.index('<section id="training">')]
    assert "nothing to compare across datasets" not in evaluation
    assert "per model on each dataset" in evaluation


def test_a_fine_tuned_encoder_shows_one_heatmap_row_per_block_and_its_drift(tmp_path):
    """finetune's grad_stats hold one row per tensor (16 per BERT block): the heatmap merges them per block,
    bottom block first under the model's own layers, and the drift curves (cosine, CKA per block) are drawn."""
    parts = ("attention.self.query.weight", "intermediate.dense.weight", "output.dense.weight")
    layers = [f"encoder.layer.{n}.{p}" for n in (5, 4) for p in parts] + ["item_proj.weight"]
    with RunWriter(tmp_path / "run", run_id="r1") as run:
        run.write("grad_stats", [{"model": "finetune", "dataset": "synthetic", "step": s, "layer": layer,
                                  "grad_norm": 0.1, "weight_norm": 2.0, "update_ratio": 1e-3, "nan_count": 0,
                                  "inf_count": 0} for s in range(4) for layer in layers])
        run.write("curves", [{"model": "finetune", "dataset": "synthetic", "step": 9 * (e + 1), "epoch": e,
                              "name": name, "value": v} for e in range(3)
                             for name, v in (("train/epoch_loss", 3.0 - e), ("val/ndcg@10", 0.1 * e),
                                             ("text/drift_cosine", 1.0 - 0.02 * e),
                                             ("text/cka/encoder.layer.4", 1.0 - 0.01 * e),
                                             ("text/cka/encoder.layer.5", 1.0 - 0.03 * e))])
    page = build_html(tmp_path / "run")
    training = page[page.index('<section id="training">'):page.index('<section id="diagnosis">')]
    assert "Gradients: finetune" in training and "finetune: gradient norm per layer" in training
    assert not [p for p in parts if p in training]                       # no per-tensor rows
    heatmap = training[training.index("finetune: gradient norm per layer"):]
    # one row per block, in block order, after the model's own layers
    assert heatmap.index("item_proj.weight") < heatmap.index("encoder.layer.4") < heatmap.index("encoder.layer.5")
    assert "finetune: drift from the pretrained encoder" in training
    for line in ("text cosine to pretrained", "CKA encoder.layer.4", "CKA encoder.layer.5"):
        assert line in training
    mf_only = build_html(evaluated_run(tmp_path / "mf"))
    assert "drift from the pretrained encoder" not in mf_only              # only models that record it
