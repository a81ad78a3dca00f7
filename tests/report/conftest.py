"""Real runs for the report tests: the pipeline on tiny synthetic data, run once per test session.

``demo_run``: every stage but tune, models pop, mf and two_tower, gradient statistics at every step.
``second_run``: prepare, train and evaluate of pop and mf with another training seed, so that
queries and comparisons have two runs to concatenate. Tests that use them are marked ``ray``.
Data and evaluation run on the session's Ray; training runs in this process (``train.engine=local``:
the report is what these runs are for; Ray Train is tested in tests/train and by the pipeline runs of
tests/test_pipeline.py, tests/test_plugin_pipeline.py and tests/cluster).
"""

from __future__ import annotations

import pytest

TINY = ["dataset.synthetic.n_users=200", "dataset.synthetic.n_items=120", "dataset.synthetic.n_topics=3",
        "dataset.synthetic.mean_interactions_per_user=10", "dataset.synthetic.chunk_users=100",
        "train.epochs=3", "train.probe_every=1", "train.log_every=1", "eval.bootstrap_samples=50",
        "train.engine=local"]


def _pipeline(root, overrides, stages=None):
    from rayjobs._common import compose
    from recsys.pipeline import run_stages

    cfg = compose(TINY + overrides + [f"report.dir={root}/run", f"data.cache_dir={root.parent}/cache"])
    return run_stages(cfg, stages)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, ray_session):
    """The directory of a whole pipeline run (every stage but the search, pop/mf/two_tower).

    The tune stage is left out to keep the session short; the tuning section is tested on
    trials rows written through RunWriter (:func:`write_tuning_rows`).
    """
    from recsys.pipeline import RUN_STAGES, STAGES

    stages = [name for name in [*STAGES, *RUN_STAGES] if name != "tune"]
    return _pipeline(tmp_path_factory.mktemp("demo"), ["models=[pop,mf,two_tower]"], stages)


@pytest.fixture(scope="session")
def second_run(tmp_path_factory, ray_session):
    """The directory of a second, shorter run (prepare, train, evaluate of pop and mf; another seed)."""
    return _pipeline(tmp_path_factory.mktemp("second"), ["models=[pop,mf]", "train.seed=7"],
                     ["prepare", "train", "evaluate"])


def write_tuning_rows(run_dir, run_id=None, model="mf", dataset="synthetic"):
    """A search's rows, written through RunWriter (resuming the run): two rounds of trials of both modes,
    the tuned models' metrics and their paired tests, as the tune stage writes them."""
    from recsys.report.writer import RunWriter

    trials, metrics, comparisons = [], [], []
    for round_ in (0, 1):
        for mode, offset in (("directed", 0.02), ("undirected", 0.0)):
            for index in range(3):
                status = "error" if (round_, mode, index) == (1, "undirected", 2) else "completed"
                objective = None if status == "error" else 0.1 + 0.03 * round_ + offset + 0.01 * index
                directed = mode == "directed"
                trials.append({"dataset": dataset, "model": model, "round": round_, "mode": mode,
                               "trial_id": f"{mode[:3]}-{round_}-{index}", "config": {"train.lr": 0.01 * (index + 1)},
                               "objective": objective, "status": status, "stopped_at": 3,
                               "origin_remedy": "UNDERFITTING" if directed else None,
                               "remedies": [{"code": "UNDERFITTING", "edit": "scale_range x3", "param": "train.lr",
                                             "before": "[0.001, 0.01]", "after": "[0.003, 0.03]",
                                             "status": "applied"}] if directed else None,
                               "val_curve": None if objective is None else [objective * f for f in (0.5, 0.8, 1.0)],
                               "stop_reason": "exception" if status == "error" else "max_epochs",
                               "error": "RuntimeError: worker died" if status == "error" else None,
                               "model_variant": f"{model}:{mode}", "selected": index == 2 and round_ == 1})
    from recsys.report.reader import query

    has_base = query(f"SELECT COUNT(*) AS n FROM metrics WHERE model = '{model}'", str(run_dir))["n"].item() > 0
    for name, value in ((model, 0.10), (f"{model}:undirected", 0.13), (f"{model}:directed", 0.17)):
        if name == model and has_base:
            continue                   # a real run already has the untuned model's metrics
        metrics.append({"dataset": dataset, "model": name, "split": "test", "protocol": "full", "segment": "all",
                        "metric": "ndcg", "k": 10, "value": value, "ci_low": value - 0.02,
                        "ci_high": value + 0.02, "n_users": 100})
    for baseline, value in ((model, 0.10), (f"{model}:undirected", 0.13)):
        comparisons.append({"dataset": dataset, "split": "test", "protocol": "full", "segment": "all",
                            "baseline": baseline, "candidate": f"{model}:directed", "metric": "ndcg", "k": 10,
                            "baseline_value": value, "candidate_value": 0.17, "delta": 0.17 - value,
                            "ci_low": 0.17 - value - 0.01, "ci_high": 0.17 - value + 0.01, "p_value": 0.001,
                            "p_adjusted": 0.002, "test": "paired_t", "correction": "holm", "n_users": 100})
    with RunWriter(run_dir, run_id=run_id, resume=True) as run:
        with run.transaction():
            run.write("trials", trials)
            run.write("metrics", metrics)
            run.write("comparisons", comparisons)
        run.mark_stage_done("tune")


@pytest.fixture
def add_tuning_rows():
    """:func:`write_tuning_rows`, for tests (conftest is not importable under --import-mode=importlib)."""
    return write_tuning_rows
