"""The vector cache: fingerprints, atomic parts, lookups, duplicates, compaction, damaged parts."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from recsys.embed.cache import EmbeddingCache, embedding_array, embedding_matrix, write_cache_part
from recsys.embed.catalogue import cache_payload, mark_todo
from recsys.embed.config import EncoderConfig
from recsys.embed.templates import TextSpec
from recsys.errors import DataError

IDENTITY = {"sha256": "ab" * 32, "model_type": "bert", "dim": 2, "model": "m", "source": "path"}


def part(hashes, vectors):
    return pa.table({"text_hash": hashes, "embedding": embedding_array(np.asarray(vectors, dtype=np.float32))})


def payload(**changes):
    cfg = EncoderConfig(**{k: v for k, v in changes.items() if k in EncoderConfig.__dataclass_fields__})
    spec = TextSpec(changes.get("template", "{title}"), cfg.fallback_text, cfg.max_chars)
    identity = dict(IDENTITY, **{k: v for k, v in changes.items() if k in IDENTITY})
    return cache_payload(identity, cfg, spec, changes.get("precision", "float32"))


@pytest.mark.parametrize("change", [
    {"sha256": "cd" * 32}, {"pooling": "cls"}, {"normalize": False}, {"max_length": 64},
    {"template": "{title}[. {genres}]"}, {"fallback_text": "n/a"}, {"max_chars": 100}, {"precision": "float16"},
])
def test_every_setting_that_changes_vectors_changes_the_key(tmp_path, change):
    base = EmbeddingCache.open(tmp_path, "enc", payload())
    assert EmbeddingCache.open(tmp_path, "enc", payload(**change)).directory != base.directory


def test_settings_that_do_not_change_vectors_keep_the_key(tmp_path):
    base = EmbeddingCache.open(tmp_path, "enc", payload())
    same = payload(batch_size=7, actors=3, rows_per_block=5, engine="local", model="elsewhere", source="hub")
    assert EmbeddingCache.open(tmp_path, "enc", same).directory == base.directory


def test_parts_round_trip_and_lookup_in_any_order(tmp_path):
    cache = EmbeddingCache.open(tmp_path, "enc", payload())
    cache.write_part(part(["a", "b"], [[1, 0], [0, 1]]))
    cache.write_part(part(["c"], [[2, 2]]))
    assert cache.known_hashes() == {"a", "b", "c"}
    np.testing.assert_array_equal(cache.vectors_for(["c", "a", "a"]), [[2, 2], [1, 0], [1, 0]])
    assert not list(cache.parts_dir.glob(".*"))            # no temporary files left behind


def test_a_part_written_twice_is_read_once(tmp_path):
    cache = EmbeddingCache.open(tmp_path, "enc", payload())
    cache.write_part(part(["a"], [[1, 0]]))
    cache.write_part(part(["a"], [[1, 0]]))
    assert cache.read().num_rows == 1


def test_missing_vectors_are_a_data_error(tmp_path):
    cache = EmbeddingCache.open(tmp_path, "enc", payload())
    with pytest.raises(DataError, match="no cached vector"):
        cache.vectors_for(["zz"])


def test_damaged_part_is_skipped_so_its_texts_are_encoded_again(tmp_path):
    cache = EmbeddingCache.open(tmp_path, "enc", payload())
    cache.write_part(part(["a"], [[1, 0]]))
    (cache.parts_dir / "part-0-damaged.parquet").write_bytes(b"PAR1 not really")
    assert cache.known_hashes() == {"a"}


def test_compaction_merges_parts_without_losing_vectors(tmp_path):
    cache = EmbeddingCache.open(tmp_path, "enc", payload())
    for i in range(5):
        write_cache_part(cache.parts_dir, part([f"h{i}", "dup"], [[i, 0], [9, 9]]))
    assert cache.compact(max_parts=10) == 0
    assert cache.compact(max_parts=3) == 5
    assert len(cache.part_files()) == 1
    np.testing.assert_array_equal(cache.vectors_for(["h3", "dup"]), [[3, 0], [9, 9]])


def test_mark_todo_skips_known_and_repeated_hashes():
    texts = pa.table({"text_hash": ["a", "b", "a", "c", "b"]})
    assert mark_todo(texts, {"c"}).column("is_todo").to_pylist() == [True, True, False, False, False]


def test_embedding_columns_round_trip():
    vectors = np.arange(12, dtype=np.float32).reshape(4, 3)
    chunked = pa.chunked_array([embedding_array(vectors[:1]), embedding_array(vectors[1:])])
    np.testing.assert_array_equal(embedding_matrix(chunked), vectors)
