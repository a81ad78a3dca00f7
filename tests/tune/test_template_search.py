"""A space that changes the item text (``encoder.template``, as a TEXT_FIELD_HURTS remedy does) embeds the
catalogue with that template before the search, and its trials and the retrain read those vectors."""

from __future__ import annotations

import json

import pytest

from rayjobs._common import compose
from recsys.embed.config import template_for
from recsys.embed.templates import optional_fields
from recsys.pipeline import run_stages
from recsys.report.reader import load_tables

from tests.diagnose.scenarios import BASE

STAGES = ["prepare", "embed", "train", "evaluate", "diagnose", "tune"]
TITLE_ONLY = "{title}"


def _values(metrics, model: str) -> dict:
    rows = metrics.filter((metrics["model"] == model) & (metrics["segment"] == "all"))
    return {(r["split"], r["metric"], r["k"]): r["value"] for r in rows.iter_rows(named=True)}


@pytest.mark.ray
@pytest.mark.slow
def test_a_pinned_template_is_embedded_and_trained_on(tmp_path):
    cfg = compose([*BASE, "models=[pop,two_tower]", "eval.bootstrap_samples=50", "tune.mode=directed",
                   "tune.trials=2", "tune.rounds=1", "tune.epochs=2",
                   f"+tune.space.encoder.template={{type:fixed,value:'{TITLE_ONLY}'}}",
                   f"report.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/cache"])
    tables = load_tables(str(run_stages(cfg, STAGES)))

    trials = tables["trials"]
    assert trials.height == 2
    assert all(json.loads(c)["encoder.template"] == TITLE_ONLY for c in trials["config"])
    assert set(trials["status"]) == {"completed"} and trials["selected"].sum() == 1

    # item-vector files: the run's own template, the diagnosis's text ablations (one per optional field),
    # and the title-only text the search added
    own = template_for(cfg.encoder, "synthetic")
    vector_files = list((tmp_path / "cache" / "embeddings").glob("*/datasets/*.parquet"))
    assert len(vector_files) == 1 + len(optional_fields(own)) + 1

    metrics = tables["metrics"]
    tuned = _values(metrics, "two_tower:directed")
    assert tuned and tuned != _values(metrics, "two_tower")        # other text, another model
