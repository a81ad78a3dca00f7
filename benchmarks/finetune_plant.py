"""Try a planted fault on ``finetune`` before it becomes a matrix scenario: one run, its findings and curves.

Runs the diagnosis matrix's harness (``tests/diagnose/scenarios.py``: its BASE settings, the
``FINETUNE`` ones, then the given overrides) and prints every finding of the model with its
evidence, then the per-epoch series the encoder rules read, and the seconds the run took.

    .venv/bin/python -m benchmarks.finetune_plant overfit_try dataset.synthetic.n_users=100 \\
        dataset.synthetic.n_items=80 model.finetune.train_layers=2 model.finetune.encoder_lr=2e-4 train.epochs=25

``--workdir`` keeps the runs and the shared preparation cache between calls (default
``/tmp/finetune-plant``), so each synthetic world is prepared and embedded once.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from pathlib import Path

SERIES = ("train/epoch_loss", "val/ndcg@10", "text/drift_cosine", "text/anisotropy", "text/anisotropy_pretrained",
          "text/score_share", "epoch_seconds")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a name for the run (its report directory)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides on top of the matrix's settings")
    parser.add_argument("--workdir", default="/tmp/finetune-plant")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    import polars as pl

    from recsys.report.reader import load_tables
    from tests.diagnose.scenarios import FINETUNE, Scenario, describe, run_scenario

    work = Path(args.workdir)
    shutil.rmtree(work / "runs" / args.name, ignore_errors=True)
    sc = Scenario(args.name, "", (*FINETUNE, *args.overrides), ("finetune",))
    outcome = run_scenario(sc, work / "runs", work / "cache")
    print(f"{args.name}: {outcome.seconds:.1f} s\n{describe(outcome.found)}")
    curves = load_tables(str(outcome.report_dir))["curves"].filter(pl.col("model") == "finetune")
    names = [n for n in SERIES if n in set(curves["name"])]
    names += sorted(n for n in set(curves["name"]) if n.startswith("text/cka/"))
    for name in names:
        values = curves.filter(pl.col("name") == name).sort("step")["value"].to_list()
        print(f"  {name}: {', '.join(f'{v:.4f}' for v in values)}")


if __name__ == "__main__":
    main()
