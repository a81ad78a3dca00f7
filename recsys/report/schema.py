"""The report tables: one Arrow schema per table, with a one-line doc per column.

Every table is long and tidy so runs concatenate and SQL works across them
(DESIGN.md, "Report tables"). Every table has ``run_id``; ids of users and items
are the dataset's original ids as text. A column declared ``nullable=False`` is
required: the writer refuses rows without it. Nullable columns may be left out
and are filled with nulls. Columns whose doc starts with ``JSON`` hold a JSON
document as text.

``TABLES`` maps table name to schema; each field's doc sits in its metadata
(``doc``), and ``TABLE_DOCS`` says what one row is.

>>> sorted(TABLES)[:3]
['comparisons', 'curves', 'datasets']
>>> TABLES["metrics"].field("k").type
DataType(int32)
>>> column_docs("runs")["status"]
'one of running, succeeded, failed'
>>> required_columns("curves")
['run_id', 'model', 'step', 'name', 'value']
"""

from __future__ import annotations

import pyarrow as pa

from recsys.errors import ConfigError

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
RUN_STATUSES = ("running", "succeeded", "failed")


def _col(name: str, dtype: pa.DataType, doc: str, *, required: bool = False) -> pa.Field:
    return pa.field(name, dtype, nullable=not required, metadata={"doc": doc})


def _run_id() -> pa.Field:
    return _col("run_id", pa.string(), "id of the run that wrote the row (see runs)", required=True)


def _dataset(required: bool = True) -> pa.Field:
    return _col("dataset", pa.string(), "dataset name (dataset.name, or a user-given label)",
                required=required)


def _model(required: bool = True) -> pa.Field:
    return _col("model", pa.string(), "model name (pop, mf, content, two_tower, sasrec, or a tuned variant)",
                required=required)


def _split(required: bool = True) -> pa.Field:
    return _col("split", pa.string(), "evaluation split: val or test", required=required)


def _protocol() -> pa.Field:
    return _col("protocol", pa.string(),
                "ranking protocol: full (every item the user has not seen) or sampled (uni100, pop100)")


def _k() -> pa.Field:
    return _col("k", pa.int32(), "cut-off of a top-k metric; null for metrics without one")


def _trial_id() -> pa.Field:
    return _col("trial_id", pa.string(), "Tune trial that produced the row; null outside a search")


TABLE_DOCS: dict[str, str] = {
    "runs": "one row per run: config, versions, start/end, status, host and cluster",
    "datasets": "one row per (run, dataset, stage): sizes, cold and leakage counts of that stage",
    "metrics": "one row per (run, dataset, model, split, segment, metric, k): value with confidence interval",
    "user_metrics": "one row per (run, dataset, model, split, user, metric, k): one user's metric value",
    "recommendations": "one row per (run, dataset, model, split, user, rank): a top-k list entry",
    "comparisons": "one row per (run, dataset, split, segment, baseline, candidate, metric, k): a significance test",
    "curves": "one row per (run, model, trial, step, name): a training-curve point (loss, val metric, lr)",
    "grad_stats": "one row per (run, model, trial, step, layer): gradient, weight and update statistics",
    "findings": "one row per diagnosis finding: code, severity, location, evidence, advice and remedy",
    "feature_importance": "one row per (run, model, feature, method, metric, k): metric drop without the feature",
    "embedding_health": "one row per (run, model, embedding): rank, norms, isotropy, dead rows",
    "trials": "one row per Tune trial: round, config, metrics, status, stop point, originating remedy",
    "rankings": "one row per (run, dataset, split, protocol, segment, metric, k, model): the model's rank there",
    "insights": "one row per plain-language line comparing models: its kind, the models, segments and numbers",
    "external_lists": "one row per (run, dataset, list, split): what became of a list from outside (eval.external)",
}

TABLES: dict[str, pa.Schema] = {
    "runs": pa.schema([
        _run_id(),
        _col("status", pa.string(), "one of running, succeeded, failed", required=True),
        _col("started_at", UTC_TIMESTAMP, "when the run started (UTC)", required=True),
        _col("ended_at", UTC_TIMESTAMP, "when the run finished (UTC); null while running"),
        _col("config", pa.string(), "JSON: the whole resolved configuration", required=True),
        _col("versions", pa.string(), "JSON: versions of python, recsys and the installed libraries",
             required=True),
        _col("host", pa.string(), "host name of the driver process", required=True),
        _col("cluster", pa.string(), "JSON: Ray address and cluster resources (empty object when unknown)",
             required=True),
        _col("stages", pa.string(), "JSON: list of completed stage names, in completion order",
             required=True),
        _col("error", pa.string(), "type and message of the failure; null unless status is failed"),
    ]),
    "datasets": pa.schema([
        _run_id(),
        _dataset(),
        _col("stage", pa.string(), "loaded, filtered, train, val, test, or another stage name",
             required=True),
        _col("n_rows", pa.int64(), "interaction rows in the stage", required=True),
        _col("n_users", pa.int64(), "distinct users in the stage's interactions"),
        _col("n_items", pa.int64(), "distinct items in the stage's interactions"),
        _col("n_catalog_items", pa.int64(), "distinct items in the item table and the interactions together (the catalogue)"),
        _col("n_cold_users", pa.int64(), "users of the stage with no train interaction (0 for train; null before the split)"),
        _col("n_cold_items", pa.int64(), "items of the stage with no train interaction (0 for train; null before the split)"),
        _col("n_cold_rows", pa.int64(), "rows of the stage with a cold user or a cold item (0 for train; null before the split)"),
        _col("n_leakage_rows", pa.int64(),
             "val/test rows strictly earlier than the same user's latest train interaction (temporal leakage)"),
        _col("n_leakage_users", pa.int64(), "users with at least one leakage row"),
        _col("n_timestamp_ties", pa.int64(), "val/test rows whose timestamp equals one of the same user's train timestamps"),
        _col("details", pa.string(), "JSON: stage extras (timestamp range, rows per user, cold user/item rows, items without metadata)"),
    ]),
    "metrics": pa.schema([
        _run_id(),
        _dataset(),
        _model(),
        _split(),
        _protocol(),
        _col("segment", pa.string(), "user segment the value covers; 'all' for every evaluated user",
             required=True),
        _col("metric", pa.string(), "metric name (ndcg, recall, precision, hit_rate, mrr, coverage, ...)",
             required=True),
        _k(),
        _col("value", pa.float64(), "metric value averaged over the segment's users; null when undefined"),
        _col("ci_low", pa.float64(), "lower end of the confidence interval of value"),
        _col("ci_high", pa.float64(), "upper end of the confidence interval of value"),
        _col("n_users", pa.int64(), "users the value averages over"),
    ]),
    "user_metrics": pa.schema([
        _run_id(),
        _dataset(),
        _model(),
        _split(),
        _protocol(),
        _col("user_id", pa.string(), "original user id", required=True),
        _col("metric", pa.string(), "metric name", required=True),
        _k(),
        _col("value", pa.float64(), "the user's metric value; null when undefined for the user"),
    ]),
    "recommendations": pa.schema([
        _run_id(),
        _dataset(),
        _model(),
        _split(),
        _col("user_id", pa.string(), "original user id", required=True),
        _col("rank", pa.int32(), "position in the top-k list, 1 = best", required=True),
        _col("item_id", pa.string(), "original id of the recommended item", required=True),
        _col("score", pa.float32(), "model score of the item for the user", required=True),
        _col("is_relevant", pa.bool_(), "whether the item is among the user's held-out items in the split"),
    ]),
    "comparisons": pa.schema([
        _run_id(),
        _dataset(),
        _split(),
        _protocol(),
        _col("segment", pa.string(), "user segment compared; 'all' for every evaluated user",
             required=True),
        _col("baseline", pa.string(), "model the candidate is compared against", required=True),
        _col("candidate", pa.string(), "model being compared", required=True),
        _col("metric", pa.string(), "metric name", required=True),
        _k(),
        _col("baseline_value", pa.float64(), "baseline's mean metric value over the paired users"),
        _col("candidate_value", pa.float64(), "candidate's mean metric value over the paired users"),
        _col("delta", pa.float64(), "candidate_value - baseline_value", required=True),
        _col("ci_low", pa.float64(), "lower end of the confidence interval of delta"),
        _col("ci_high", pa.float64(), "upper end of the confidence interval of delta"),
        _col("p_value", pa.float64(), "p-value of the paired test"),
        _col("p_adjusted", pa.float64(), "p-value adjusted for multiple comparisons"),
        _col("test", pa.string(), "paired test used (e.g. paired_t, wilcoxon, bootstrap)", required=True),
        _col("correction", pa.string(), "multiple-comparison correction (e.g. holm, benjamini_hochberg)"),
        _col("n_users", pa.int64(), "users present in both models' results"),
    ]),
    "curves": pa.schema([
        _run_id(),
        _dataset(False),
        _model(),
        _trial_id(),
        _col("step", pa.int64(), "optimizer step (global, starting at 0)", required=True),
        _col("epoch", pa.int32(), "epoch the step belongs to"),
        _col("name", pa.string(), "series name (train/loss, val/ndcg@10, lr, ...)", required=True),
        _col("value", pa.float64(), "value of the series at the step", required=True),
    ]),
    "grad_stats": pa.schema([
        _run_id(),
        _dataset(False),
        _model(),
        _trial_id(),
        _col("step", pa.int64(), "optimizer step the statistics were taken at", required=True),
        _col("epoch", pa.int32(), "epoch the step belongs to"),
        _col("layer", pa.string(), "parameter name (e.g. item_tower.0.weight)", required=True),
        _col("grad_norm", pa.float64(), "L2 norm of the parameter's gradient"),
        _col("weight_norm", pa.float64(), "L2 norm of the parameter"),
        _col("update_ratio", pa.float64(), "norm of the step's parameter update divided by weight_norm"),
        _col("nan_count", pa.int64(), "NaN entries in the gradient"),
        _col("inf_count", pa.int64(), "infinite entries in the gradient"),
        _col("rows_touched_share", pa.float64(),
             "embedding tables: share of rows with a non-zero gradient in any step so far; null for other layers"),
    ]),
    "findings": pa.schema([
        _run_id(),
        _dataset(False),
        _col("model", pa.string(), "model the finding is about; null for dataset-level findings"),
        _trial_id(),
        _col("round", pa.int32(), "search round the diagnosis belongs to; null outside a search"),
        _col("code", pa.string(),
             "stable finding code (e.g. EXPLODING_GRADIENTS, POPULARITY_BIAS; see docs/diagnosis.md)", required=True),
        _col("severity", pa.string(), "info, warning or critical", required=True),
        _col("component", pa.string(), "part at fault: data, embedding, model, training, evaluation",
             required=True),
        _col("message", pa.string(), "what is wrong, with the numbers that show it, in one line", required=True),
        _col("location", pa.string(),
             "JSON: where it applies (model, trial_id, layer, embedding, table, series, segment, split, feature)"),
        _col("evidence", pa.string(), "JSON: the numbers the rule saw and the thresholds it applied"),
        _col("advice", pa.string(), "what to change and why, for a person"),
        _col("remedy", pa.string(),
             "JSON: list of search-space edits ({param, op, value or factor}); null when none applies"),
    ]),
    "feature_importance": pa.schema([
        _run_id(),
        _dataset(),
        _model(),
        _split(),
        _col("feature", pa.string(), "feature or feature group removed or permuted", required=True),
        _col("feature_group", pa.string(), "group the feature belongs to; null when feature is a group"),
        _col("method", pa.string(), "how the feature was taken away: ablation, permutation, ...", required=True),
        _col("metric", pa.string(), "metric name", required=True),
        _k(),
        _col("baseline_value", pa.float64(), "metric value with every feature"),
        _col("value", pa.float64(), "metric value without the feature"),
        _col("drop", pa.float64(), "baseline_value - value; positive when the feature helps", required=True),
        _col("ci_low", pa.float64(), "lower end of the confidence interval of drop"),
        _col("ci_high", pa.float64(), "upper end of the confidence interval of drop"),
        _col("n_repeats", pa.int32(), "repetitions (permutations) averaged"),
        _col("n_users", pa.int64(), "users the drop averages over"),
    ]),
    "embedding_health": pa.schema([
        _run_id(),
        _dataset(False),
        _model(),
        _col("embedding", pa.string(), "embedding table (item_id, user_id, item_text, output, ...)",
             required=True),
        _col("n_rows", pa.int64(), "rows (vectors) examined", required=True),
        _col("dim", pa.int32(), "vector dimension", required=True),
        _col("effective_rank", pa.float64(), "exp of the entropy of the normalised singular values"),
        _col("norm_mean", pa.float64(), "mean L2 norm of the rows"),
        _col("norm_std", pa.float64(), "standard deviation of the row norms"),
        _col("norm_min", pa.float64(), "smallest row norm"),
        _col("norm_max", pa.float64(), "largest row norm"),
        _col("isotropy", pa.float64(), "min/max of the partition function over principal directions (1 = isotropic)"),
        _col("mean_cosine", pa.float64(), "mean pairwise cosine similarity of (sampled) rows"),
        _col("dead_rows", pa.int64(), "rows never updated or with norm below the dead threshold"),
        _col("details", pa.string(), "JSON: extras (thresholds, sample size, spectrum head)"),
    ]),
    "trials": pa.schema([
        _run_id(),
        _dataset(False),
        _model(False),
        _col("round", pa.int32(), "search round (0 = first)", required=True),
        _col("trial_id", pa.string(), "Tune trial id", required=True),
        _col("mode", pa.string(), "search mode: directed or undirected"),
        _col("config", pa.string(), "JSON: the trial's sampled configuration", required=True),
        _col("metrics", pa.string(), "JSON: the trial's last reported metrics"),
        _col("objective", pa.float64(), "value of the metric the search optimises"),
        _col("status", pa.string(), "completed, stopped (by the scheduler), diverged (NaN loss) or error",
             required=True),
        _col("stopped_at", pa.int64(), "training iteration at which the scheduler stopped the trial"),
        _col("origin_remedy", pa.string(), "finding codes (comma-separated) whose remedies shaped the trial's space"),
        _col("remedies", pa.string(), "JSON: the space edits applied for the trial's round (code, edit, before, "
             "after, status)"),
        _col("val_curve", pa.string(), "JSON: validation NDCG reported after each epoch"),
        _col("stop_reason", pa.string(), "max_epochs, early_stopping, asha, nan or exception"),
        _col("error", pa.string(), "the trial's error (exception type and message, or where the loss turned NaN)"),
        _col("model_variant", pa.string(), "model name the search's result is reported under (<model>:directed ...)"),
        _col("selected", pa.bool_(), "whether this trial's configuration was retrained as the round's result"),
        _col("seeded_from", pa.string(), "the search's start point: baseline (its own settings) or round N (that "
             "round's selected configuration); null for drawn trials"),
    ]),
    "rankings": pa.schema([
        _run_id(),
        _dataset(),
        _split(),
        _protocol(),
        _col("segment", pa.string(), "user segment or item group of the metrics row; 'all' for every evaluated user",
             required=True),
        _col("metric", pa.string(), "metric name", required=True),
        _k(),
        _model(),
        _col("value", pa.float64(), "the model's metric value (as in metrics); null when undefined"),
        _col("ci_low", pa.float64(), "lower end of the confidence interval of value"),
        _col("ci_high", pa.float64(), "upper end of the confidence interval of value"),
        _col("rank", pa.int32(), "1 = best (lowest for gini and popularity, else highest); ties share the smallest rank; null without a value"),
        _col("n_models", pa.int32(), "models ranked in the group (those with a value)"),
    ]),
    "insights": pa.schema([
        _run_id(),
        _col("dataset", pa.string(), "dataset the line is about; null for lines across datasets (rank_change)"),
        _col("split", pa.string(), "split the line is about (compare.split)"),
        _protocol(),
        _col("kind", pa.string(), "tradeoff, best_segment, worst_segment or rank_change", required=True),
        _col("model", pa.string(), "model the line is about (the better one of a tradeoff)"),
        _col("other_model", pa.string(), "model it is compared with (tradeoff); null otherwise"),
        _col("segment", pa.string(), "segment of the main claim ('all' for rank_change)"),
        _col("other_segment", pa.string(), "segment of the contrast (tradeoff) or 'all' (best/worst_segment)"),
        _col("metric", pa.string(), "metric name"),
        _k(),
        _col("delta", pa.float64(),
             "effect: model - other_model on segment (tradeoff), segment - overall value (best/worst_segment), rank spread (rank_change)"),
        _col("p_value", pa.float64(), "adjusted p-value of the claimed difference (tradeoff); null otherwise"),
        _col("text", pa.string(), "the line as printed", required=True),
    ]),
    "external_lists": pa.schema([
        _run_id(),
        _dataset(),
        _col("model", pa.string(), "the list's name (eval.external name), as in metrics", required=True),
        _split(),
        _col("path", pa.string(), "the list file; empty when no list was given for the split", required=True),
        _col("format", pa.string(), "file format read: parquet, csv, tsv or trec"),
        _col("status", pa.string(), "evaluated, or why the list was not evaluated on the split", required=True),
        _col("n_rows", pa.int64(), "rows in the file"),
        _col("n_users", pa.int64(), "distinct users in the file"),
        _col("n_unknown_users", pa.int64(), "distinct user ids of the file not in the dataset's user map (their rows are dropped)"),
        _col("n_unknown_user_rows", pa.int64(), "rows of unknown users"),
        _col("n_unknown_items", pa.int64(), "distinct item ids not in the dataset's item map, among rows of known users (dropped)"),
        _col("n_unknown_item_rows", pa.int64(), "rows of known users with an unknown item"),
        _col("n_duplicate_rows", pa.int64(), "repeated (user, item) rows beyond the first (the highest score is kept)"),
        _col("n_seen_dropped", pa.int64(), "rows of items the user has seen (train; train and val on test), dropped as models mask them"),
        _col("n_rank_conflicts", pa.int64(), "users whose rank column disagrees with their scores (scores order the list)"),
        _col("n_outside_split_users", pa.int64(), "listed users without a held-out item in the split (not evaluated)"),
        _col("n_split_users", pa.int64(), "users of the split evaluated (at least one held-out item not seen)"),
        _col("n_missing_users", pa.int64(), "evaluated users with no row in the file: an empty list, zero hits, part of every average"),
        _col("n_short_lists", pa.int64(), "evaluated users in the file whose list has fewer than k items after dropping"),
        _col("k", pa.int32(), "list length evaluated: the largest eval.k"),
        _col("unavailable_metrics", pa.string(), "comma-separated metrics a list cannot have (auc needs every item's score)"),
    ]),
}


def _check_table(table: str) -> pa.Schema:
    if table not in TABLES:
        raise ConfigError(
            f"unknown report table '{table}'",
            hint=f"use one of: {', '.join(TABLES)}",
        )
    return TABLES[table]


def column_docs(table: str) -> dict[str, str]:
    """Map each column of ``table`` to its one-line doc.

    >>> list(column_docs("curves"))[:3]
    ['run_id', 'dataset', 'model']
    """
    schema = _check_table(table)
    return {f.name: f.metadata[b"doc"].decode() for f in schema}


def required_columns(table: str) -> list[str]:
    """Columns ``table`` cannot do without (declared non-nullable), in schema order.

    >>> required_columns("datasets")
    ['run_id', 'dataset', 'stage', 'n_rows']
    """
    return [f.name for f in _check_table(table) if not f.nullable]


def json_columns(table: str) -> list[str]:
    """Columns of ``table`` that hold a JSON document as text.

    >>> json_columns("findings")
    ['location', 'evidence', 'remedy']
    """
    return [name for name, doc in column_docs(table).items() if doc.startswith("JSON")]


def schema_for(table: str) -> pa.Schema:
    """The schema of ``table``; a :class:`ConfigError` lists the known tables otherwise.

    >>> schema_for("runs").names[:2]
    ['run_id', 'status']
    """
    return _check_table(table)
