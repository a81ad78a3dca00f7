"""Real runs for the report tests: the pipeline on tiny synthetic data, run once per test session.

``demo_run``: every stage, models pop, mf and two_tower, gradient statistics at every step.
``second_run``: prepare, train and evaluate of pop and mf with another training seed, so that
queries and comparisons have two runs to concatenate. Tests that use them are marked ``ray``.
"""

from __future__ import annotations

import pytest

TINY = ["dataset.synthetic.n_users=200", "dataset.synthetic.n_items=120", "dataset.synthetic.n_topics=3",
        "dataset.synthetic.mean_interactions_per_user=10", "dataset.synthetic.chunk_users=100",
        "train.epochs=3", "train.probe_every=1", "train.log_every=1", "eval.bootstrap_samples=50"]


def _pipeline(root, overrides, stages=None):
    from rayjobs._common import compose
    from recsys.pipeline import run_stages

    cfg = compose(TINY + overrides + [f"report.dir={root}/run", f"data.cache_dir={root.parent}/cache"])
    return run_stages(cfg, stages)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, ray_session):
    """The directory of a whole pipeline run (all stages, pop/mf/two_tower)."""
    return _pipeline(tmp_path_factory.mktemp("demo"), ["models=[pop,mf,two_tower]"])


@pytest.fixture(scope="session")
def second_run(tmp_path_factory, ray_session):
    """The directory of a second, shorter run (prepare, train, evaluate of pop and mf; another seed)."""
    return _pipeline(tmp_path_factory.mktemp("second"), ["models=[pop,mf]", "train.seed=7"],
                     ["prepare", "train", "evaluate"])
