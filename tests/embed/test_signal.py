"""Real signal: MiniLM vectors of MovieLens movies put movies that share a genre closer than random pairs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.data.config import DataConfig, DatasetConfig, SplitConfig
from recsys.data.prepare import prepare
from recsys.embed.catalogue import embed_catalogue
from recsys.embed.config import EncoderConfig
from tests.embed.fixtures import write_prepared

pytestmark = pytest.mark.slow

N_MOVIES = 800
N_PAIRS = 20_000


def genre_gap(vectors: np.ndarray, genres: list[set[str]], seed: int = 1) -> tuple[float, float, int]:
    """Mean cosine of random pairs that share a genre, mean cosine of all random pairs, and the share count."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(vectors), N_PAIRS), rng.integers(0, len(vectors), N_PAIRS)
    a, b = a[a != b], b[a != b]
    cosine = (vectors[a] * vectors[b]).sum(axis=1)             # vectors are L2-normalised
    share = np.array([bool(genres[i] & genres[j]) for i, j in zip(a, b)])
    return float(cosine[share].mean()), float(cosine.mean()), int(share.sum())


def test_movies_sharing_a_genre_are_closer_than_random_pairs(ml_latest_small, tmp_path):
    full = prepare(DatasetConfig(name="movielens", path=str(ml_latest_small)),
                   DataConfig(cache_dir=str(tmp_path / "prepared"), engine="local"), SplitConfig())
    items = pq.read_table(full.path / "items.parquet")
    picked = np.sort(np.random.default_rng(0).choice(items.num_rows, N_MOVIES, replace=False))
    subset = write_prepared(tmp_path / "subset", items.take(pa.array(picked)))

    result = embed_catalogue(subset, EncoderConfig(engine="local"), tmp_path / "cache")   # real all-MiniLM-L6-v2
    assert result.identity["dim"] == 384 and result.identity["source"] == "package"
    table = pq.read_table(result.path)
    vectors = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    by_id = dict(zip(subset.items()["item_id"].to_list(), subset.items()["genres"].to_list()))
    genres = [set((by_id[i] or "").split("|")) - {"(no genres listed)", ""}
              for i in table.column("item_id").to_pylist()]

    shared, overall, n_shared = genre_gap(vectors, genres)
    assert n_shared > 1000
    assert shared > overall + 0.02, f"genre-sharing pairs {shared:.3f} vs random pairs {overall:.3f}"

    # the same measure with genres shuffled across movies finds no gap: the assertion above can fail
    shuffled = [genres[i] for i in np.random.default_rng(2).permutation(len(genres))]
    shared_null, overall_null, _ = genre_gap(vectors, shuffled)
    assert abs(shared_null - overall_null) < 0.01
