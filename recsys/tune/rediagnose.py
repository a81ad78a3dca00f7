"""Diagnose a retrained trial as the diagnose stage would have diagnosed it in the baseline's place.

The rules read the run's published tables; for the retrained model its own curves,
gradient statistics, metrics and popularity comparison replace the baseline's rows
(the model keeps its plain name while judged, so remedies name its settings), and its
feature importance and embedding health are measured afresh. Nothing is written here.
"""

from __future__ import annotations

import polars as pl

from recsys.diagnose.finding import Finding


def _without(frame: pl.DataFrame, table: str, model: str) -> pl.DataFrame:
    if frame is None or not frame.height:
        return frame
    if table == "comparisons":
        return frame.filter((pl.col("baseline") != model) & (pl.col("candidate") != model))
    return frame.filter(pl.col("model").is_null() | (pl.col("model") != model))


def _joined(old: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    if old is None or not old.height:
        return new
    return pl.concat([old, new.select(old.columns)], how="vertical_relaxed")


def rediagnose(state, model, trained, rows) -> list[Finding]:
    """Findings of ``model`` (retrained; ``rows``: its evaluation per split) by the run's diagnosis rules."""
    from recsys.diagnose.stage import diagnose_models, judge, published_tables, rows_frame, without_missing_settings
    from recsys.evaluate.stage import comparison_rows, metric_rows

    run, name, dataset = state.run, state.model, state.dataset
    dcfg, ecfg = run.cfg.diagnose, run.cfg.eval
    evaluation = state.evaluation
    ctx, segments, groups = evaluation.context, evaluation.segments, evaluation.item_groups
    fresh = {
        "curves": [dict(r, dataset=dataset) for r in trained.telemetry.curves],
        "grad_stats": [dict(r, dataset=dataset) for r in trained.telemetry.grad_stats],
        "metrics": [dict(r, model=name, dataset=dataset) for split, result in rows.items()
                    for r in metric_rows(result, ctx, split, ecfg, segments[split], groups)],
        "comparisons": [],
    }
    pop = dcfg.baseline_model
    if pop in evaluation.rows:
        for split, result in rows.items():
            fresh["comparisons"] += [dict(r, dataset=dataset) for r in comparison_rows(
                {pop: evaluation.rows[pop][split], name: result}, split, ecfg, {"all": segments[split]["all"]})]
    tables = published_tables(run.writer.run_dir, dataset)
    for table in tables:
        tables[table] = _without(tables[table], table, name)
    for table, new in fresh.items():
        tables[table] = _joined(tables.get(table), rows_frame(table, new))
    result = diagnose_models({name: model}, run.prepared, dcfg, train_seed=run.cfg.train.seed,
                             context=ctx, eval_cfg=ecfg)
    return without_missing_settings(judge(tables, result, dcfg))
