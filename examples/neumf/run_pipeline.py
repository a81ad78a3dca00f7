"""Run the whole recsys pipeline on the NeuMF plugin: train (Ray Train), evaluate, diagnose, tune, report.

    .venv/bin/python -m pip install -e examples/neumf      # once: registers `neumf` by entry point
    .venv/bin/python examples/neumf/run_pipeline.py [extra Hydra overrides]

The same as ``python -m rayjobs.pipeline 'models=[pop,mf,neumf]' tune.model=neumf ...``, from Python:
``compose`` builds the checked configuration, ``run_stages`` runs every stage under one report.
"""

from __future__ import annotations

import sys

from rayjobs._common import compose
from recsys.pipeline import run_stages
from recsys.report.reader import query

SMALL = ["dataset.synthetic.n_users=600", "dataset.synthetic.n_items=300",
         "models=[pop,mf,neumf]", "model.neumf.dim=16", "train.epochs=5",
         "tune.model=neumf", "tune.rounds=1", "tune.trials=4", "tune.epochs=2"]


def main(overrides: list[str]) -> None:
    report = run_stages(compose(SMALL + overrides))
    print(query("SELECT model, split, value FROM metrics WHERE segment = 'all' AND metric = 'ndcg' AND k = 10 "
                "ORDER BY split, value DESC", str(report)))
    print(query("SELECT model, feature, method, drop FROM feature_importance WHERE model = 'neumf'", str(report)))


if __name__ == "__main__":
    main(sys.argv[1:])
