"""The pipeline's ``compare`` stage, and the comparison of finished runs for ``recsys report compare``.

The stage runs once per run, after every dataset's stages: it reads the run's own
``metrics`` and ``comparisons`` rows (every dataset's), writes ``rankings`` and
``insights`` (:mod:`recsys.evaluate.crossdata`) and prints the strongest lines of each kind
(:func:`console_lines`; ``recsys report compare`` prints them all). For a run
that has no ``rankings`` yet (written before the stage existed, or without it),
:func:`compare_reports` computes them the same way from its tables and config.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from recsys.errors import ConfigError
from recsys.evaluate.crossdata import CompareConfig, Comparison, check_compare_config, compare_run
from recsys.report.reader import RunSpec, scan_tables

log = logging.getLogger(__name__)


def _own_rows(run_dir: Path, run_id: str, tables: list[str]) -> list[pl.DataFrame]:
    frames = scan_tables(run_dir)
    return [frames[table].filter(pl.col("run_id") == run_id).drop("run_id").collect() for table in tables]


def format_lines(comparison: Comparison, heading: str) -> str:
    """The heading, then one indented line per insight (or a line saying there is none).

    >>> empty = Comparison(pl.DataFrame(), pl.DataFrame({"dataset": [], "text": []}, schema={"dataset": pl.String,
    ...                                                                                      "text": pl.String}))
    >>> print(format_lines(empty, "models compared:"))
    models compared:
      nothing to say: no significant trade-off, no clear segment difference, no rank change
    """
    lines = comparison.lines() or ["nothing to say: no significant trade-off, no clear segment difference, "
                                   "no rank change"]
    return "\n".join([heading] + [f"  {line}" for line in lines])


CONSOLE_LINES_PER_KIND = 2     # the console shows this many lines of each kind per dataset; the tables hold all


def console_lines(comparison: Comparison, heading: str, run_location: str,
                  per_kind: int = CONSOLE_LINES_PER_KIND) -> str:
    """:func:`format_lines` for the console: the first ``per_kind`` lines of each kind per dataset (the
    strongest: the lines are sorted by effect), then how many more there are and the command that shows them.

    >>> insights = pl.DataFrame({"dataset": ["d"] * 4, "kind": ["tradeoff", "segment", "segment", "segment"],
    ...                          "text": ["mf beats pop", "mf on heavy users", "mf on light users", "pop on new"]})
    >>> print(console_lines(Comparison(pl.DataFrame(), insights), "models compared:", "runs/r1", per_kind=2))
    models compared:
      [d] mf beats pop
      [d] mf on heavy users
      [d] mf on light users
      1 more line: recsys report compare --runs runs/r1 --show insights
    """
    insights = comparison.insights
    if insights.is_empty():
        return format_lines(comparison, heading)
    seen: dict[tuple, int] = {}
    shown = []
    for dataset, kind, text in insights.select("dataset", "kind", "text").iter_rows():
        seen[dataset, kind] = seen.get((dataset, kind), 0) + 1
        if seen[dataset, kind] <= per_kind:
            shown.append(f"[{dataset or 'all datasets'}] {text}")
    lines = [heading] + [f"  {line}" for line in shown]
    more = insights.height - len(shown)
    if more:
        lines.append(f"  {more} more line{'s' if more != 1 else ''}: "
                     f"recsys report compare --runs {run_location} --show insights")
    return "\n".join(lines)


def stage_compare(run) -> None:
    """Rank the run's models on every dataset and segment; write ``rankings`` and ``insights``; print the lines.

    ``run`` is the pipeline's run-level state (``cfg``, ``writer``, ``datasets``).
    """
    cfg = run.cfg
    check_compare_config(cfg.compare, cfg.eval.k)
    metrics, comparisons = _own_rows(run.writer.run_dir, run.writer.run_id, ["metrics", "comparisons"])
    if metrics.is_empty():
        raise ConfigError("the compare stage found no metrics rows in this run", setting="stages",
                          hint="run the evaluate stage first (stages: prepare, embed, train, evaluate, compare), "
                               "or compare an evaluated run with `recsys report compare --runs DIR`")
    result = compare_run(metrics, comparisons, cfg.compare, alpha=cfg.eval.alpha, confidence=cfg.eval.confidence)
    run.writer.write("rankings", result.rankings)
    run.writer.write("insights", result.insights)
    datasets = ", ".join(sorted(set(result.rankings["dataset"].to_list())))
    print(console_lines(result, f"models compared on {datasets} ({cfg.compare.split} split, "
                                f"significance: adjusted p < {cfg.eval.alpha:g}):", run.writer.location))


# ---------------------------------------------------------------- finished runs


@dataclass
class RunComparison:
    """One run's rankings and insights, and whether they were read from its tables or computed now."""

    run_id: str
    comparison: Comparison
    stored: bool


def _settings(config_json: str | None) -> tuple[CompareConfig, float, float]:
    """The run's ``compare.*``, ``eval.alpha`` and ``eval.confidence`` (defaults where it has none)."""
    config = json.loads(config_json) if config_json else {}
    compare = config.get("compare") or {}
    evaluation = config.get("eval") or {}
    known = {k: v for k, v in compare.items() if k in CompareConfig.__dataclass_fields__}
    return CompareConfig(**known), evaluation.get("alpha", 0.05), evaluation.get("confidence", 0.95)


def compare_reports(spec: RunSpec) -> list[RunComparison]:
    """Rankings and insights of every selected run that has metrics, in run id order.

    A run's stored ``rankings``/``insights`` are used when it has them; otherwise
    they are computed from its ``metrics`` and ``comparisons`` with its own settings.
    """
    frames = scan_tables(spec)
    runs = frames["runs"].select("run_id", "config").collect()
    with_metrics = frames["metrics"].select("run_id").unique().collect()["run_id"].to_list()
    configs = dict(runs.iter_rows())
    out = []
    for run_id in sorted(with_metrics):
        own = {table: frames[table].filter(pl.col("run_id") == run_id).drop("run_id")
               for table in ("metrics", "comparisons", "rankings", "insights")}
        rankings = own["rankings"].collect()
        if rankings.height:
            out.append(RunComparison(run_id, Comparison(rankings, own["insights"].collect()), stored=True))
            continue
        cfg, alpha, confidence = _settings(configs.get(run_id))
        result = compare_run(own["metrics"].collect(), own["comparisons"].collect(), cfg, alpha=alpha,
                             confidence=confidence)
        out.append(RunComparison(run_id, result, stored=False))
    return out
