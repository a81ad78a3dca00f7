"""What the HTML report reads from one run: its tables (the large per-user ones left out) and its headline metric.

>>> import tempfile
>>> from recsys.report.writer import RunWriter
>>> with RunWriter(tempfile.mkdtemp(), run_id="r", config={"compare": {"metrics": ["recall@20"]}}) as run:
...     pass
>>> data = load_run(run.run_dir)
>>> data.run_id, data.metric, data.k, data.split, data.models
('r', 'recall', 20, 'test', [])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import polars as pl

from recsys.errors import ConfigError, DataError
from recsys.report.locations import Location
from recsys.report.reader import resolve_runs, scan_tables

# user_metrics and recommendations can be large and the page does not draw them row by row.
PAGE_TABLES = ("runs", "datasets", "metrics", "comparisons", "curves", "grad_stats", "findings",
               "feature_importance", "embedding_health", "trials", "rankings", "insights", "external_lists")
TUNED_SUFFIXES = (":directed", ":undirected")


def metric_label(metric: str, k: int | None) -> str:
    """``ndcg@10`` style label.

    >>> metric_label("ndcg", 10), metric_label("auc", None)
    ('ndcg@10', 'auc')
    """
    return metric if k is None else f"{metric}@{k}"


def same_k(k: int | None) -> pl.Expr:
    """Filter expression for the cut-off ``k`` (null when the metric has none)."""
    return pl.col("k").is_null() if k is None else pl.col("k") == k


@dataclass
class RunData:
    """One run's tables as polars frames, and the metric, cut-off and split the page leads with."""

    run_dir: Location
    run_id: str
    run: dict
    config: dict
    tables: dict[str, pl.DataFrame]
    metric: str = "ndcg"
    k: int | None = 10
    split: str = "test"
    datasets: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return metric_label(self.metric, self.k)

    def headline(self, frame: pl.DataFrame | None = None) -> pl.DataFrame:
        """Rows of ``metrics`` (or ``frame``) for the headline metric, cut-off and split."""
        frame = self.tables["metrics"] if frame is None else frame
        return frame.filter((pl.col("metric") == self.metric) & same_k(self.k) & (pl.col("split") == self.split))


def _headline_metric(config: dict, metrics: pl.DataFrame) -> tuple[str, int | None, str]:
    compare = config.get("compare") or {}
    names = compare.get("metrics") or ["ndcg@10"]
    metric, _, k = str(names[0]).partition("@")
    split = compare.get("split") or "test"
    chosen = (metric, int(k) if k.isdigit() else None)
    if metrics.height and metrics.filter((pl.col("metric") == chosen[0]) & same_k(chosen[1])).is_empty():
        first = metrics.select("metric", "k").unique().sort("metric", "k", nulls_last=True).row(0)
        chosen = (first[0], first[1])
    if metrics.height and metrics.filter(pl.col("split") == split).is_empty():
        split = metrics["split"].sort()[0]
    return chosen[0], chosen[1], split


def load_run(run_dir: str | Location) -> RunData:
    """Read one run's page tables; a spec that selects no run or several is a clear error."""
    runs = resolve_runs(run_dir)
    if len(runs) != 1:
        raise ConfigError(f"the HTML report covers one run, but {str(run_dir)!r} selects {len(runs)}",
                          hint="pass one run directory; `recsys report list` shows them")
    frames = scan_tables(runs[0])
    tables = {name: frames[name].collect() for name in PAGE_TABLES}
    if tables["runs"].is_empty():
        raise DataError("the run has no runs row (it did not start through RunWriter)", file=str(runs[0]),
                        hint="write the run with recsys.report.RunWriter")
    run = tables["runs"].row(0, named=True)
    config = json.loads(run["config"]) if run["config"] else {}
    metric, k, split = _headline_metric(config, tables["metrics"])
    datasets = sorted(set(tables["datasets"]["dataset"].to_list()) | set(tables["metrics"]["dataset"].to_list()))
    models = sorted(set(tables["metrics"]["model"].to_list()) | set(tables["curves"]["model"].to_list()))
    return RunData(run_dir=runs[0], run_id=run["run_id"], run=run, config=config, tables=tables,
                   metric=metric, k=k, split=split, datasets=datasets, models=models)
