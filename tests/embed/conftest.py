"""Fixtures of the embedding tests (helpers live in ``tests/embed/fixtures.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.data.config import DataConfig, SplitConfig
from recsys.data.prepare import prepare
from recsys.embed.config import EncoderConfig
from tests.embed.fixtures import save_tiny_bert, tiny_synthetic


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture()
def tiny_cfg(tiny_model) -> EncoderConfig:
    return EncoderConfig(name="tiny", path=str(tiny_model), max_length=64, batch_size=16, rows_per_block=32,
                         engine="local", threads_per_actor=1)


@pytest.fixture(scope="session")
def small_prepared(tmp_path_factory):
    """A prepared synthetic dataset with 120 items (title, description, genres)."""
    cache = tmp_path_factory.mktemp("prepared")
    return prepare(tiny_synthetic(), DataConfig(cache_dir=str(cache), engine="local"), SplitConfig())
