"""``TextEncoder``: texts → vectors with a transformers model; one callable class in-process and in Ray Data.

The model and tokenizer load once in ``__init__`` (``trust_remote_code=False``
always); ``encode(texts)`` returns float32 vectors; ``__call__(batch)`` takes an
Arrow table (or dict) with ``text`` and returns it with ``text`` replaced by
``embedding`` (fixed-size list<float32>[d]), which is the ``map_batches``
contract. Inside ``encode`` texts are sorted by length and cut into
``batch_size`` forward passes, so padding stays small; the output keeps the
input order.

>>> # enc = TextEncoder(EncoderConfig()); enc.encode(["Heat (1995). Genres: Action"]).shape
>>> # (1, 384)
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyarrow as pa

from recsys.embed.config import EncoderConfig
from recsys.embed.source import ModelSource, model_sha256, resolve_model
from recsys.errors import ConfigError

log = logging.getLogger(__name__)

POOLINGS = ("mean", "cls")
DEVICES = ("auto", "cpu", "cuda")


def check_encoder_config(cfg: EncoderConfig) -> None:
    """Reject impossible encoder settings before loading anything.

    >>> check_encoder_config(EncoderConfig(pooling="max"))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'encoder.pooling': unknown pooling 'max'. What to do: use one of mean, cls
    """
    if cfg.pooling not in POOLINGS:
        raise ConfigError(f"unknown pooling '{cfg.pooling}'", setting="encoder.pooling",
                          hint=f"use one of {', '.join(POOLINGS)}")
    if cfg.device not in DEVICES:
        raise ConfigError(f"unknown device '{cfg.device}'", setting="encoder.device",
                          hint=f"use one of {', '.join(DEVICES)}")
    for name in ("max_length", "batch_size", "rows_per_block"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(cfg, name)}", setting=f"encoder.{name}",
                              hint="use a positive number")


def pick_device(requested: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without a GPU is an error."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("encoder.device is cuda but no GPU is visible", setting="encoder.device",
                          hint="use encoder.device=auto or cpu, or run on a machine with a CUDA GPU")
    return requested


def pool(hidden, mask, how: str):
    """Masked mean over real tokens, or the first ([CLS]) token.

    ``hidden`` (B, T, D), ``mask`` (B, T) of 0/1 → (B, D).

    >>> import torch
    >>> h = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [9.0, 9.0]]])
    >>> pool(h, torch.tensor([[1, 1, 0]]), "mean").tolist(), pool(h, torch.tensor([[1, 1, 0]]), "cls").tolist()
    ([[2.0, 1.0]], [[1.0, 0.0]])
    """
    if how == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)                      # (B, T, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # (B, D)


class TextEncoder:
    """A BERT-family encoder ready to embed texts: the same object in a loop or as a Ray Data UDF."""

    def __init__(
        self,
        cfg: EncoderConfig,
        *,
        device: str | None = None,
        threads: int | None = None,
        expected_sha256: str | None = None,
        source: ModelSource | None = None,
    ) -> None:
        import torch

        check_encoder_config(cfg)
        if threads:
            torch.set_num_threads(int(threads))
        self.cfg = cfg
        self.source = source or resolve_model(cfg)
        if expected_sha256 and model_sha256(self.source.directory) != expected_sha256:
            raise ConfigError(f"the encoder files at {self.source.directory} differ from the ones the run started "
                              f"with (content hash mismatch)", setting="encoder.path",
                              hint="use the same model files on every node (a shared path or the same package "
                                   "version)")
        self.device = pick_device(device or cfg.device)
        self.half = bool(cfg.half_precision and self.device == "cuda")
        self.tokenizer, self.model = _load(self.source, self.device, self.half)
        max_positions = getattr(self.model.config, "max_position_embeddings", None)
        if max_positions and cfg.max_length > max_positions:
            raise ConfigError(f"max_length {cfg.max_length} exceeds the model's {max_positions} positions",
                              setting="encoder.max_length", hint=f"use encoder.max_length <= {max_positions}")
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` → float32 array (len(texts), dim), rows in input order."""
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        size = self.cfg.batch_size
        with torch.inference_mode():
            for start in range(0, len(texts), size):
                rows = order[start:start + size]
                tokens = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                        max_length=self.cfg.max_length, return_tensors="pt").to(self.device)
                hidden = self.model(**tokens).last_hidden_state.float()  # (B, T, D), fp32 even after fp16
                vectors = pool(hidden, tokens["attention_mask"], self.cfg.pooling)
                if self.cfg.normalize:
                    vectors = torch.nn.functional.normalize(vectors, dim=1)
                out[rows] = vectors.cpu().numpy()
        return out

    def __call__(self, batch: pa.Table | dict[str, Any]) -> pa.Table:
        """Ray Data / in-process UDF: the batch with ``text`` replaced by ``embedding`` (list<float32>[dim])."""
        table = batch if isinstance(batch, pa.Table) else pa.table(batch)
        texts = table.column("text").to_pylist()
        vectors = self.encode(texts)
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), self.dim)
        return table.drop_columns(["text"]).append_column("embedding", embedding)


def _load_error(source: ModelSource, exc: Exception) -> ConfigError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return ConfigError(
        f"cannot load the encoder from {source.directory} ({type(exc).__name__}: {first[:300]})",
        setting="encoder.path" if source.kind == "path" else "encoder.model",
        hint="check that the directory holds a complete BERT-family transformers model "
             "(re-save it with save_pretrained, or re-install the package that ships it)")


def check_loadable(source: ModelSource) -> None:
    """Load the config and tokenizer and read the weights' header, without building the model.

    Catches broken checkpoints in the driver, before Ray workers would each fail on them.
    """
    from transformers import AutoConfig, AutoTokenizer

    try:
        AutoConfig.from_pretrained(source.directory, trust_remote_code=False)
        AutoTokenizer.from_pretrained(source.directory, trust_remote_code=False)
        weights = source.directory / "model.safetensors"
        if weights.exists():
            from safetensors import safe_open

            with safe_open(str(weights), framework="pt") as handle:
                handle.keys()
        elif (source.directory / "pytorch_model.bin").exists():
            import torch

            torch.load(source.directory / "pytorch_model.bin", map_location="cpu", mmap=True, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - transformers/safetensors raise many types for a bad checkpoint
        raise _load_error(source, exc) from None


def _load(source: ModelSource, device: str, half: bool):
    """Load tokenizer and model from a checked directory; a broken checkpoint is a ConfigError naming it."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()   # a per-tensor bar is noise in job logs
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.directory, trust_remote_code=False)
        model = AutoModel.from_pretrained(source.directory, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types for a bad checkpoint
        raise _load_error(source, exc) from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    model.eval().to(device)
    if half:
        model.half()
    return tokenizer, model
