"""The embed stage inside the pipeline: tables of one run, progress lines a log reader can follow."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rayjobs._common import compose
from recsys import pipeline
from recsys.embed.stage import stage_embed
from recsys.report.reader import load_tables

REPO = Path(__file__).resolve().parents[2]
TINY = ["dataset.synthetic.n_users=60", "dataset.synthetic.n_items=90", "dataset.synthetic.n_topics=3",
        "dataset.synthetic.mean_interactions_per_user=10", "dataset.synthetic.chunk_users=60", "data.engine=local"]


def tiny_encoder(model: Path) -> list[str]:
    return ["encoder.name=tiny", f"encoder.path={model}", "encoder.max_length=64", "encoder.rows_per_block=16",
            "encoder.progress_every_s=0"]


@pytest.mark.ray
def test_prepare_then_embed_in_one_run(tmp_path, tiny_model, monkeypatch, caplog):
    if "embed" not in pipeline.STAGES:
        monkeypatch.setitem(pipeline.STAGES, "embed", stage_embed)
    cfg = compose(TINY + tiny_encoder(tiny_model) + [f"report.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/c"])
    with caplog.at_level(logging.INFO, logger="recsys.embed"):
        report = pipeline.run_stages(cfg, ["prepare", "embed"])
    tables = load_tables(str(report))
    assert json.loads(tables["runs"].row(0, named=True)["stages"]) == ["prepare", "embed"]
    health = tables["embedding_health"].row(0, named=True)
    assert (health["dataset"], health["embedding"], health["dim"]) == ("synthetic", "item_text", 32)
    assert health["n_rows"] == 90 and json.loads(health["details"])["n_encoded"] == 90

    lines = [r.getMessage() for r in caplog.records if r.name in ("recsys.embed", "recsys.embed.progress")]
    label = r"embed tiny \(\d+ actor\(s\) x \d+ thread\(s\), cpu\): "
    assert re.fullmatch(label + "0/90 texts to encode", lines[0])
    middle = label + r"\d+/90 texts \(\d+\.\d%\), [\d.]+ texts/s, eta \w+"
    assert any(re.fullmatch(middle, line) for line in lines[1:-1])
    assert re.fullmatch(label + r"done, 90 texts in \w+ \([\d.]+ texts/s\)", lines[-1])
    quiet = [r.getMessage() for r in caplog.records if r.name == "recsys.embed.progress"]
    assert quiet == [lines[0], lines[-1]]           # the run's log file; the console has "embed: started/done"
    assert not any("\r" in line or "\n" in line for line in lines)
    assert (tmp_path / "c" / "embeddings").is_dir()          # encoder.cache_dir unset: under data.cache_dir


@pytest.mark.slow
def test_rayjobs_embed_entry_point_on_one_cpu(tmp_path, tiny_model):
    # one CPU: the encoder actor holds a token share and nothing it waits for may need a whole CPU
    env = dict(os.environ, RAY_DATA_DISABLE_PROGRESS_BARS="1", RAY_AUTH_MODE="disabled", HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-m", "rayjobs.embed", *TINY, *tiny_encoder(tiny_model), f"report.dir={tmp_path}/run",
         f"data.cache_dir={tmp_path}/c", "ray.num_cpus=1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert "embed: started" in output and "embed: done in" in output
    for text in ("0/90 texts to encode", "done, 90 texts in"):   # the stage's own lines say it: the file only
        assert text not in output and text in (tmp_path / "run" / "run.log").read_text()
    assert "succeeded" in done.stdout
