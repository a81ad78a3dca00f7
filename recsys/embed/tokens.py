"""Token states of an encoder's frozen lower layers, computed once per catalogue and cached by fingerprint.

The fine-tuned model (:mod:`recsys.models.finetune`) trains only the encoder's top
``k`` transformer layers. Everything below them is fixed, so its output, the hidden
states entering layer ``L - k`` for every item's tokens, is computed here once and
an epoch runs only the trained layers over it.

Layout (one directory per fingerprint)::

    <cache_root>/tokens-<key>/identity.json   encoder hash, template, max_tokens, layer_from, item count
    <cache_root>/tokens-<key>/states.npy      (N, T, H) float32: hidden states entering layer ``layer_from``
    <cache_root>/tokens-<key>/mask.npy        (N, T) uint8: 1 for a real token
    <cache_root>/tokens-<key>/pretrained.npy  (N, H) float32: the pretrained encoder's pooled output (all layers)
    <cache_root>/tokens-<key>/item_ids.json   the items in row order (item_idx order of the dataset)
    <cache_root>/tokens-<key>/texts.json      their texts (another layer split or token length derives from them)

``key`` fingerprints the encoder's content hash, the template, ``max_tokens``,
``layer_from``, the pooling and the hash of every item's text in order, so any
change to the catalogue or to those settings makes a new directory and an
unchanged rerun reads the files (memory-mapped) instead of running the encoder.
Files appear atomically (written under a hidden name, then renamed;
``identity.json`` last, so a directory with it is complete). The cache lives on a
local path: on a cluster, point ``encoder.cache_dir`` at a path every node mounts.

>>> mask = extended_mask(torch.tensor([[1, 1, 0]]), torch.float32)      # (1, 1, 1, 3)
>>> mask[0, 0, 0, :2].tolist(), bool(mask[0, 0, 0, 2] < -1e30)
([0.0, 0.0], True)
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recsys import storage
from recsys.data.prepared import fingerprint
from recsys.embed.encoder import pool
from recsys.errors import ConfigError, DataError

log = logging.getLogger(__name__)

TOKENS_FORMAT = 1
IDENTITY = "identity.json"


@dataclass
class ItemTokens:
    """The cached frozen part of the item tower for one catalogue (tensors on CPU)."""

    states: torch.Tensor        # (N, T, H) float32 hidden states entering layer ``layer_from``
    mask: torch.Tensor          # (N, T) int64 attention mask
    pretrained: torch.Tensor    # (N, H) float32 pooled output of the whole pretrained encoder
    layer_from: int             # first trained layer (= number of frozen layers)
    n_layers: int               # transformer layers of the encoder
    encoder_dir: str            # where the encoder's files are (the trained layers start from them)
    identity: dict              # what the cache key was computed from
    directory: str | None = None

    @property
    def n_items(self) -> int:
        return int(self.states.shape[0])


def resolve_layers(train_layers: int, n_layers: int, setting: str = "model.finetune.train_layers") -> int:
    """How many top layers train: ``train_layers``, at most all ``n_layers`` (so e.g. 99 means all of them).

    >>> resolve_layers(99, 6), resolve_layers(2, 6)
    (6, 2)
    >>> resolve_layers(-1, 6)
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'model.finetune.train_layers': cannot train -1 layers. What to do: use 0 (frozen) .. 6, or any larger number for all 6
    """
    if train_layers < 0:
        raise ConfigError(f"cannot train {train_layers} layers", setting=setting,
                          hint=f"use 0 (frozen) .. {n_layers}, or any larger number for all {n_layers}")
    return min(int(train_layers), n_layers)


def extended_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) 0/1 mask → (B, 1, 1, T) additive attention mask: 0 on real tokens, the dtype's minimum on padding."""
    keep = mask[:, None, None, :].bool()                                   # (B, 1, 1, T)
    return torch.zeros(keep.shape, dtype=dtype, device=mask.device).masked_fill(~keep, torch.finfo(dtype).min)


def run_layers(layers, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Apply transformer ``layers`` in order: (B, T, H) states, (B, T) mask → (B, T, H)."""
    attention = extended_mask(mask, states.dtype)
    for layer in layers:
        out = layer(states, attention_mask=attention)
        states = out[0] if isinstance(out, tuple) else out
    return states


def load_encoder(directory: str | Path):
    """Tokenizer and model from a local directory, eager attention (additive 4-D masks), eval mode."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False)
        model = AutoModel.from_pretrained(str(directory), trust_remote_code=False, attn_implementation="eager")
    except Exception as exc:  # noqa: BLE001 - transformers raises many types for a bad checkpoint
        raise ConfigError(f"cannot load the encoder from {directory} ({type(exc).__name__})",
                          setting="encoder.path", hint="point encoder.path at a BERT-family model directory") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if not hasattr(model, "encoder") or not hasattr(model.encoder, "layer") or not hasattr(model, "embeddings"):
        raise ConfigError(f"the encoder at {directory} is not BERT-family (no embeddings/encoder.layer)",
                          setting="encoder.path", hint="use a BERT-family encoder (bert, MiniLM, ...)")
    return tokenizer, model.eval()


@torch.no_grad()
def frozen_states(tokenizer, model, texts: list[str], layer_from: int, max_tokens: int, pooling: str,
                  batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(states (N, T, H), mask (N, T), pretrained (N, H))`` for ``texts``, ``T = max_tokens``.

    ``states`` enter layer ``layer_from``; ``pretrained`` is the pooled output of every layer.
    """
    layers = list(model.encoder.layer)
    hidden = int(model.config.hidden_size)
    states = np.zeros((len(texts), max_tokens, hidden), dtype=np.float32)
    masks = np.zeros((len(texts), max_tokens), dtype=np.uint8)
    pretrained = np.zeros((len(texts), hidden), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(texts[start:start + batch_size], padding="max_length", truncation=True,
                           max_length=max_tokens, return_tensors="pt")
        mask = tokens["attention_mask"]                                   # (B, T)
        x = model.embeddings(input_ids=tokens["input_ids"],
                             token_type_ids=tokens.get("token_type_ids"))  # (B, T, H)
        x = run_layers(layers[:layer_from], x, mask)
        states[start:start + len(mask)] = x.float().numpy()
        masks[start:start + len(mask)] = mask.numpy()
        top = run_layers(layers[layer_from:], x, mask)
        pretrained[start:start + len(mask)] = pool(top, mask, pooling).float().numpy()
    return states, masks, pretrained


def _save_npy(array: np.ndarray, path: Path) -> None:
    storage.publish_atomic(path, lambda handle: np.save(handle, array))


def texts_hash(texts: list[str]) -> str:
    """One hash of every text in order.

    >>> texts_hash(["a", "b"]) != texts_hash(["b", "a"])
    True
    """
    digest = hashlib.sha256()
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()


def cache_item_tokens(texts: list[str], item_ids: list[str], encoder_dir: str | Path, encoder_sha256: str,
                      *, cache_root: str | Path, train_layers: int, max_tokens: int, pooling: str = "mean",
                      template: str = "", batch_size: int = 64, ray_cfg=None) -> ItemTokens:
    """The token states of ``texts`` (one per item, in item_idx order): read from the cache, or computed.

    Computed in this process, or by a Ray Data actor pool when ``ray_cfg`` (the run's
    :class:`~recsys.embed.config.EncoderConfig`, which sizes the pool) is given.

    >>> # tokens = cache_item_tokens(["Heat (1995)"], ["6"], get_model_path(), sha, cache_root="/tmp/c",
    >>> #                            train_layers=1, max_tokens=32)
    """
    if len(texts) != len(item_ids):
        raise DataError(f"{len(texts)} texts for {len(item_ids)} items", hint="pass one text per item")
    if max_tokens < 2:
        raise ConfigError(f"max_tokens must be at least 2, got {max_tokens}", setting="model.finetune.max_tokens",
                          hint="use e.g. 32")
    config = json.loads((Path(encoder_dir) / "config.json").read_text())
    n_layers = int(config.get("num_hidden_layers", 0))
    k = resolve_layers(train_layers, n_layers)
    if max_tokens > int(config.get("max_position_embeddings", max_tokens)):
        raise ConfigError(f"max_tokens {max_tokens} exceeds the encoder's {config['max_position_embeddings']} "
                          f"positions", setting="model.finetune.max_tokens", hint="use a smaller max_tokens")
    identity = {"format": TOKENS_FORMAT, "encoder_sha256": encoder_sha256, "model_type": config.get("model_type"),
                "n_layers": n_layers, "layer_from": n_layers - k, "max_tokens": int(max_tokens),
                "pooling": pooling, "template": template, "texts": texts_hash(texts), "n_items": len(texts)}
    directory = Path(cache_root) / f"tokens-{fingerprint(identity)}"
    if (directory / IDENTITY).exists():
        log.info("token states of %s items read from %s", f"{len(texts):,}", directory)
        return load_item_tokens(directory, encoder_dir)
    if ray_cfg is not None:
        from recsys.embed._tokens_ray import frozen_states_with_ray

        states, mask, pretrained = frozen_states_with_ray(texts, str(encoder_dir), n_layers - k, max_tokens,
                                                          pooling, ray_cfg)
    else:
        tokenizer, model = load_encoder(encoder_dir)
        states, mask, pretrained = frozen_states(tokenizer, model, texts, n_layers - k, max_tokens, pooling,
                                                 batch_size)
    directory.mkdir(parents=True, exist_ok=True)
    _save_npy(states, directory / "states.npy")
    _save_npy(mask, directory / "mask.npy")
    _save_npy(pretrained, directory / "pretrained.npy")
    (directory / "item_ids.json").write_text(json.dumps([str(i) for i in item_ids]))
    (directory / "texts.json").write_text(json.dumps(list(texts)))
    text = json.dumps(dict(identity, encoder_dir=str(encoder_dir)), indent=2, sort_keys=True)
    storage.publish_atomic(directory / IDENTITY, lambda handle: handle.write(text.encode()))
    log.info("token states of %s items (layers %d.. of %d trained) written to %s", f"{len(texts):,}",
             n_layers - k, n_layers, directory)
    return load_item_tokens(directory, encoder_dir)


def derive_item_tokens(tokens: ItemTokens, train_layers: int, max_tokens: int, pooling: str) -> ItemTokens:
    """The same catalogue's token states for other settings, beside ``tokens`` in its cache root
    (computed once, then found by fingerprint): a search over ``train_layers`` or ``max_tokens``
    needs only the first cache's directory."""
    k = resolve_layers(train_layers, tokens.n_layers)
    if (tokens.layer_from == tokens.n_layers - k and tokens.states.shape[1] == max_tokens
            and tokens.identity.get("pooling") == pooling):
        return tokens
    if tokens.directory is None or not (Path(tokens.directory) / "texts.json").exists():
        raise ConfigError("these token states cannot be re-derived for other settings (no texts.json)",
                          setting="model.finetune.token_cache", hint="leave it null: the train stage fills it")
    directory = Path(tokens.directory)
    texts = json.loads((directory / "texts.json").read_text())
    item_ids = json.loads((directory / "item_ids.json").read_text())
    return cache_item_tokens(texts, item_ids, tokens.encoder_dir, tokens.identity["encoder_sha256"],
                             cache_root=directory.parent, train_layers=k, max_tokens=max_tokens, pooling=pooling,
                             template=tokens.identity.get("template", ""))


def load_item_tokens(directory: str | Path, encoder_dir: str | Path | None = None) -> ItemTokens:
    """Read a cache directory written by :func:`cache_item_tokens` (a DataError when it is missing)."""
    directory = Path(directory)
    if not (directory / IDENTITY).exists():
        raise DataError("no cached token states here", file=str(directory),
                        hint="run the train stage again (it recomputes them), or the embed stage with "
                             "finetune in models")
    identity = json.loads((directory / IDENTITY).read_text())
    encoder_dir = str(encoder_dir or identity["encoder_dir"])
    states = torch.from_numpy(np.load(directory / "states.npy", mmap_mode="r").astype(np.float32, copy=True))
    mask = torch.from_numpy(np.load(directory / "mask.npy").astype(np.int64))
    pretrained = torch.from_numpy(np.load(directory / "pretrained.npy").astype(np.float32))
    return ItemTokens(states, mask, pretrained, int(identity["layer_from"]), int(identity["n_layers"]),
                      encoder_dir, identity, str(directory))


def catalogue_texts(prepared, cfg) -> tuple[list[str], list[str]]:
    """``(item_ids, texts)`` of every item of a prepared dataset, in ``item_idx`` order (the embed stage's texts)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recsys.embed.catalogue import _in_item_order, catalogue_items, text_spec
    from recsys.embed.templates import build_text_table

    spec = text_spec(cfg, prepared.source)
    items_path, _, extra = catalogue_items(prepared)
    items = pq.read_table(items_path)
    if extra is not None:
        items = pa.concat_tables([items, extra.cast(items.schema)])
    table = _in_item_order(build_text_table(items, spec, str(items_path)), prepared.item_map())
    return table.column("item_id").to_pylist(), table.column("text").to_pylist()


def catalogue_tokens(prepared, cfg, cache_root: str | Path, *, train_layers: int, max_tokens: int,
                     pooling: str = "mean", engine: str = "local") -> ItemTokens:
    """:func:`cache_item_tokens` for every item of ``prepared`` with the run's encoder settings ``cfg``.

    ``engine="ray"`` computes uncached states with Ray Data (Ray must be running).
    """
    from recsys.embed.catalogue import text_spec
    from recsys.embed.source import model_sha256, resolve_model

    source = resolve_model(cfg)
    item_ids, texts = catalogue_texts(prepared, cfg)
    if len(item_ids) != prepared.item_map().height:
        raise DataError(f"{len(item_ids)} item texts for {prepared.item_map().height} items of the item map",
                        file=str(prepared.path), hint="prepare the dataset again")
    return cache_item_tokens(texts, item_ids, source.directory, model_sha256(source.directory),
                             cache_root=Path(cache_root), train_layers=train_layers, max_tokens=max_tokens,
                             pooling=pooling, template=text_spec(cfg, prepared.source).template,
                             batch_size=cfg.batch_size, ray_cfg=cfg if engine == "ray" else None)


def token_cache_root(cfg) -> Path:
    """Where token states are cached: ``<encoder cache root>/tokens`` (a local path; URIs fall back to
    ``<data.cache_dir>/tokens``, since the states are memory-mapped from local files).

    >>> from recsys.config import RecsysConfig
    >>> str(token_cache_root(RecsysConfig()))
    'data_cache/embeddings/tokens'
    """
    from recsys.embed.stage import cache_root
    root = cache_root(cfg)
    return Path(cfg.data.cache_dir) / "tokens" if storage.is_uri(root) else Path(root) / "tokens"


def with_token_cache(model_config, prepared, cfg, *, engine: str = "local"):
    """``model_config`` with ``token_cache`` filled when it is a finetune model's settings left at null
    (computing the states, or finding them in the cache); any other model's settings unchanged."""
    from dataclasses import replace

    from recsys.models.finetune import FineTuneConfig

    if not isinstance(model_config, FineTuneConfig) or model_config.token_cache:
        return model_config
    tokens = catalogue_tokens(prepared, cfg.encoder, token_cache_root(cfg), train_layers=model_config.train_layers,
                              max_tokens=model_config.max_tokens, pooling=model_config.pooling, engine=engine)
    # absolute: Ray Train workers and Tune trials run in directories of their own
    return replace(model_config, token_cache=str(Path(tokens.directory).resolve()))


def with_run_token_cache(cfg, prepared, model: str):
    """The run settings ``cfg`` with ``model.finetune.token_cache`` filled when ``model`` is finetune
    (a search's trials then derive whatever other states their settings need from that cache)."""
    from dataclasses import replace

    if model != "finetune":
        return cfg
    finetune = with_token_cache(cfg.model.finetune, prepared, cfg)
    return replace(cfg, model=replace(cfg.model, finetune=finetune))
