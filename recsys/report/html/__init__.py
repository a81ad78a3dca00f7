"""The HTML report of one run: one self-contained ``report.html`` in the run directory.

Sections: overview, evaluation (leaderboards with intervals, metrics by segment,
across datasets, significance matrix), training (curves, gradient-norm and
update-ratio heatmaps per layer), diagnosis (findings by severity, feature
importance, embedding health) and tuning (trials, best so far, directed vs
undirected, before/after). Plots are matplotlib (Agg) SVG inlined in the page,
so it opens offline; every table value is HTML-escaped.

>>> import tempfile
>>> from recsys.report.writer import RunWriter
>>> with RunWriter(tempfile.mkdtemp(), run_id="r1") as run:
...     _ = run.write("metrics", [{"dataset": "d", "model": "<mf>", "split": "test", "segment": "all",
...                                "metric": "ndcg", "k": 10, "value": 0.2, "ci_low": 0.1, "ci_high": 0.3}])
>>> path = write_html(run.run_dir)
>>> path.name, "&lt;mf&gt;" in path.read_text(), "No tuning trials in this run" in path.read_text()
('report.html', True, True)
"""

from __future__ import annotations

from pathlib import Path

from recsys.report import locations as loc
from recsys.report.html.data import RunData, load_run
from recsys.report.html.diagnosis import diagnosis
from recsys.report.html.evaluation import evaluation, overview
from recsys.report.html.page import page_html
from recsys.report.html.training import training
from recsys.report.html.tuning import tuning
from recsys.report.locations import Location

HTML_NAME = "report.html"
SECTION_TITLES = ("Overview", "Evaluation", "Training", "Diagnosis", "Tuning")

__all__ = ["HTML_NAME", "SECTION_TITLES", "build_html", "render", "write_html"]


def render(data: RunData) -> str:
    """The page for already loaded run data."""
    sections = [overview(data), evaluation(data), training(data), diagnosis(data), tuning(data)]
    subtitle = (f"{data.run['status']} · datasets: {', '.join(data.datasets) or '-'} · "
                f"models: {', '.join(data.models) or '-'} · headline metric {data.label} ({data.split} split)")
    return page_html(f"recsys run {data.run_id}", subtitle, sections)


def build_html(run_dir: str | Location) -> str:
    """The HTML report of the run in ``run_dir`` (local path or URI) as a string."""
    return render(load_run(run_dir))


def write_html(run_dir: str | Location, out: str | Path | None = None) -> Location:
    """Write the run's report (default: ``<run_dir>/report.html``, atomically); return where it went."""
    data = load_run(run_dir)
    target = loc.as_location(out) if out is not None else data.run_dir / HTML_NAME
    loc.write_text_atomic(target, render(data))
    return target
