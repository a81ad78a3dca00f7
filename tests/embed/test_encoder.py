"""Model resolution and TextEncoder on a tiny random BERT: pooling by hand, padding invariance, bad models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from recsys.embed.config import EncoderConfig
from recsys.embed.encoder import TextEncoder
from recsys.embed.source import model_identity, model_sha256, resolve_model
from recsys.errors import ConfigError

from tests.embed.fixtures import save_tiny_bert

TEXTS = ["Heat (1995). Genres: Action, Crime", "A", "Toy Story (1995). Genres: Adventure, Animation, Children",
         "Alien (1979). Genres: Horror, Sci-Fi. Tags: space, creature, ripley, classic, atmospheric"]


@pytest.fixture(scope="module")
def tiny_encoder(tiny_model):
    return TextEncoder(EncoderConfig(path=str(tiny_model), max_length=64, batch_size=2), threads=1)


def reference_vectors(directory: Path, texts: list[str], pooling: str, normalize: bool) -> np.ndarray:
    """One text at a time, no padding at all, pooled with plain numpy: an independent reference."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory).eval()
    rows = []
    for text in texts:
        tokens = tokenizer(text, truncation=True, max_length=64, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**tokens).last_hidden_state[0].numpy()     # (T, D), every token real
        vector = hidden[0] if pooling == "cls" else hidden.mean(axis=0)
        rows.append(vector / np.linalg.norm(vector) if normalize else vector)
    return np.stack(rows)


@pytest.mark.parametrize("pooling, normalize", [("mean", True), ("mean", False), ("cls", True)])
def test_batched_padded_vectors_match_unpadded_reference(tiny_model, pooling, normalize):
    encoder = TextEncoder(EncoderConfig(path=str(tiny_model), pooling=pooling, normalize=normalize,
                                        max_length=64, batch_size=3), threads=1)
    got = encoder.encode(TEXTS)
    want = reference_vectors(tiny_model, TEXTS, pooling, normalize)
    assert got.dtype == np.float32 and got.shape == (4, 32)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    if normalize:
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)


def test_output_order_and_batch_size_do_not_change_vectors(tiny_model, tiny_encoder):
    single = TextEncoder(EncoderConfig(path=str(tiny_model), max_length=64, batch_size=1), threads=1)
    np.testing.assert_allclose(tiny_encoder.encode(TEXTS), single.encode(TEXTS), atol=1e-5)
    np.testing.assert_allclose(tiny_encoder.encode(TEXTS[::-1]), tiny_encoder.encode(TEXTS)[::-1], atol=1e-5)


def test_call_is_the_map_batches_contract(tiny_encoder):
    batch = pa.table({"text_hash": ["h1", "h2"], "text": TEXTS[:2]})
    out = tiny_encoder(batch)
    assert out.column_names == ["text_hash", "embedding"]
    assert out.schema.field("embedding").type == pa.list_(pa.float32(), 32)
    np.testing.assert_allclose(np.array(out.column("embedding").to_pylist()), tiny_encoder.encode(TEXTS[:2]))
    assert tiny_encoder({"text_hash": ["h"], "text": ["x"]}).num_rows == 1


def test_text_beyond_max_length_is_truncated_by_tokens(tiny_encoder):
    long = "word " * 20_000
    np.testing.assert_allclose(tiny_encoder.encode([long]), tiny_encoder.encode(["word " * 200]), atol=1e-6)


def test_packaged_minilm_is_found_without_a_path():
    source = resolve_model(EncoderConfig())
    assert source.kind == "package"
    identity = model_identity(source)
    assert identity["dim"] == 384 and identity["model_type"] == "bert" and len(identity["sha256"]) == 64


def test_explicit_path_wins_over_the_package(tiny_model):
    source = resolve_model(EncoderConfig(path=str(tiny_model)))
    assert (source.kind, source.directory) == ("path", tiny_model)


def test_hub_only_model_offline_says_what_to_set(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="bert-base-uncased") as err:
        resolve_model(EncoderConfig(name="bert-base", model="bert-base-uncased"))
    assert "encoder.path" in str(err.value) and "internet" in str(err.value)


def test_missing_model_directory(tmp_path):
    with pytest.raises(ConfigError, match="does not exist") as err:
        TextEncoder(EncoderConfig(path=str(tmp_path / "nope")))
    assert "encoder.path" in str(err.value)


@pytest.mark.parametrize("keep, missing", [
    ({"README.md"}, "config.json, weights"),
    ({"config.json", "vocab.txt", "tokenizer.json"}, "weights"),
    ({"config.json", "model.safetensors"}, "tokenizer files"),
])
def test_model_directory_with_wrong_files(tiny_model, tmp_path, keep, missing):
    (tmp_path / "README.md").write_text("not a model")
    for name in keep - {"README.md"}:
        shutil.copy(tiny_model / name, tmp_path / name)
    with pytest.raises(ConfigError, match=missing) as err:
        resolve_model(EncoderConfig(path=str(tmp_path)))
    assert "save_pretrained" in str(err.value)


def test_corrupt_weights_are_a_config_error_naming_the_directory(tiny_model, tmp_path):
    shutil.copytree(tiny_model, tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ConfigError, match="cannot load the encoder") as err:
        TextEncoder(EncoderConfig(path=str(tmp_path / "m")))
    assert str(tmp_path / "m") in str(err.value)


def test_config_without_model_type_is_a_config_error(tiny_model, tmp_path):
    shutil.copytree(tiny_model, tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({"hidden_size": 32}))
    with pytest.raises(ConfigError, match="model_type"):
        resolve_model(EncoderConfig(path=str(tmp_path / "m")))


def test_max_length_beyond_the_model_is_a_config_error(tiny_model):
    with pytest.raises(ConfigError, match="encoder.max_length"):
        TextEncoder(EncoderConfig(path=str(tiny_model), max_length=4096))


def test_changed_weights_change_the_identity_and_are_refused_by_a_pinned_encoder(tiny_model, tmp_path):
    other = save_tiny_bert(tmp_path / "other", seed=1)
    assert model_sha256(other) != model_sha256(tiny_model)
    with pytest.raises(ConfigError, match="content hash mismatch"):
        TextEncoder(EncoderConfig(path=str(other)), expected_sha256=model_sha256(tiny_model))


def test_half_precision_is_ignored_on_cpu(tiny_model, tiny_encoder):
    half = TextEncoder(EncoderConfig(path=str(tiny_model), max_length=64, half_precision=True), device="cpu")
    assert half.half is False
    np.testing.assert_allclose(half.encode(TEXTS), tiny_encoder.encode(TEXTS), atol=1e-5)


def test_cuda_without_a_gpu_is_a_config_error(tiny_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="no GPU"):
        TextEncoder(EncoderConfig(path=str(tiny_model), device="cuda"))
