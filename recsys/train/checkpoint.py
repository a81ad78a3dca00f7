"""Checkpoints: a trained model that rebuilds itself, and the trainer state a run resumes from.

A checkpoint is a directory::

    model.pt        the latest weights + what rebuilds the model (name, config, sizes)
    best_model.pt   the weights with the best validation metric so far (what evaluation loads)
    trainer.pt      optimizer state, progress (:class:`FitState`) and the telemetry rows so far

Model files are self-contained: the training history and text vectors are model
buffers, so :func:`load_model` needs nothing but the file. A plugin model's file also
records where the plugin lives (``pkg.module:Class``), so a later stage or another Ray
node imports it again (the package must be importable there). Every file is read with
``torch.load(weights_only=True)``: tensors and plain containers only, no pickled
code runs when a checkpoint is opened. Ray Train stores one such
directory per epoch; the local path keeps them under ``<dir>/epoch-NNNN`` with a
``latest`` pointer written atomically.

>>> import tempfile
>>> from recsys.models.base import tiny_inputs
>>> from recsys.models.registry import ModelSettings, build_model
>>> model = build_model("mf", ModelSettings().mf, tiny_inputs())
>>> path = save_model(tempfile.mkdtemp(), model)
>>> torch.equal(load_model(path).score(torch.tensor([0])), model.score(torch.tensor([0])))
True
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from recsys import storage
from recsys.errors import DataError
from recsys.models.base import ModelInputs, Recommender
from recsys.models.registry import MODELS, build_model, ensure_registered, get_spec

MODEL_FILE = "model.pt"
BEST_FILE = "best_model.pt"
TRAINER_FILE = "trainer.pt"
LATEST = "latest"


@dataclass
class FitState:
    """Progress of one model's training; ``status`` is running, completed, early_stopped or diverged."""

    epoch: int = 0                      # epochs completed
    step: int = 0                       # optimizer steps taken
    best_metric: float = float("-inf")
    best_epoch: int = -1
    bad_epochs: int = 0
    status: str = "running"
    where: str | None = None            # diverged: "loss" or "grad:<layer>", with step/epoch in curves
    val_history: list[float] = field(default_factory=list)
    resumed_at: list[int] = field(default_factory=list)   # epochs at which training resumed from a checkpoint


def model_payload(model: Recommender, state_dict: dict | None = None) -> dict:
    """What rebuilds ``model``: its registered name, the plugin it came from (None: built-in), settings, sizes."""
    return {"name": model.name, "plugin": get_spec(model.name).target, "config": asdict(model.config),
            "spec": dict(model.spec), "state_dict": state_dict if state_dict is not None else model.state_dict()}


def _save_atomic(payload, path: Path) -> Path:
    return storage.publish_atomic(path, lambda handle: torch.save(payload, handle))


def save_model(directory: str | Path, model: Recommender, state_dict: dict | None = None,
               file: str = BEST_FILE) -> Path:
    """Write ``model`` (or ``state_dict`` for it) as a self-contained file; returns its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return _save_atomic(model_payload(model, state_dict), directory / file)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> Recommender:
    """Rebuild a model from a model file or a checkpoint directory (its ``best_model.pt``), in eval mode."""
    path = Path(path)
    file = path / BEST_FILE if path.is_dir() else path
    if not file.exists():
        raise DataError("no trained model here", file=str(file), hint="run the train stage first")
    payload = torch.load(file, map_location=device, weights_only=True)
    name, plugin = payload["name"], payload.get("plugin")
    if name not in MODELS and plugin:
        ensure_registered(name, plugin)          # a plugin model: import it here too (another stage, node)
    if name not in MODELS:
        raise DataError(f"the checkpoint holds unknown model {name!r}", file=str(file),
                        hint=f"known models: {', '.join(MODELS)}; install the package that registers it")
    config = MODELS[name][0](**payload["config"])
    with torch.random.fork_rng(devices=[]):      # building initialises weights: leave the caller's RNG alone
        model = build_model(name, config, ModelInputs.placeholder(payload["spec"]))
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()


def save_checkpoint(directory: str | Path, model: Recommender, best_state: dict, optimizer_state: dict | None,
                    state: FitState, telemetry: dict) -> Path:
    """Write a full checkpoint (see the module doc) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_model(directory, model, file=MODEL_FILE)
    save_model(directory, model, best_state, file=BEST_FILE)
    _save_atomic({"optimizer": optimizer_state, "state": asdict(state), "telemetry": telemetry},
                 directory / TRAINER_FILE)
    return directory


@dataclass
class Snapshot:
    """What a run resumes from."""

    model_state: dict
    best_state: dict
    optimizer_state: dict | None
    state: FitState
    telemetry: dict


def load_checkpoint(directory: str | Path) -> Snapshot:
    directory = Path(directory)
    missing = [f for f in (MODEL_FILE, BEST_FILE, TRAINER_FILE) if not (directory / f).exists()]
    if missing:
        raise DataError(f"incomplete checkpoint: {missing} missing", file=str(directory),
                        hint="resume from another checkpoint or start again")
    model = torch.load(directory / MODEL_FILE, map_location="cpu", weights_only=True)
    best = torch.load(directory / BEST_FILE, map_location="cpu", weights_only=True)
    trainer = torch.load(directory / TRAINER_FILE, map_location="cpu", weights_only=True)
    names = {f.name for f in dataclasses.fields(FitState)}
    state = FitState(**{k: v for k, v in trainer["state"].items() if k in names})
    return Snapshot(model["state_dict"], best["state_dict"], trainer["optimizer"], state, trainer["telemetry"])


class LocalCheckpoints:
    """Epoch checkpoints under one directory: ``epoch-NNNN/`` plus an atomic ``latest`` pointer.

    Only the newest ``keep`` epochs are kept (each holds the best weights so far too).
    """

    def __init__(self, root: str | Path, keep: int = 1) -> None:
        self.root, self.keep = Path(root), keep

    def save(self, model: Recommender, best_state: dict, optimizer_state: dict | None, state: FitState,
             telemetry: dict) -> Path:
        target = self.root / f"epoch-{state.epoch:04d}"
        if target.exists():
            shutil.rmtree(target)
        save_checkpoint(target, model, best_state, optimizer_state, state, telemetry)
        storage.publish_atomic(self.root / LATEST, lambda handle: handle.write(target.name.encode()))
        for old in sorted(self.root.glob("epoch-*"))[:-self.keep]:
            if old != target:
                shutil.rmtree(old, ignore_errors=True)
        return target

    def latest(self) -> Path | None:
        pointer = self.root / LATEST
        if not pointer.exists():
            return None
        return self.root / pointer.read_text().strip()


def local_model_dir(out_dir: str | Path, name: str) -> Path:
    """Where this process keeps model ``name``'s files: ``out_dir`` itself, or a scratch directory for a URI.

    >>> local_model_dir("/tmp/run/checkpoints/mf", "mf")
    PosixPath('/tmp/run/checkpoints/mf')
    >>> local_model_dir("s3://bucket/run/checkpoints/mf", "mf").name.startswith("recsys-mf-")
    True
    """
    if storage.is_uri(out_dir):
        return Path(tempfile.mkdtemp(prefix=f"recsys-{name}-"))
    return Path(out_dir).resolve()


def publish_model(path: Path, out_dir: str | Path) -> str | None:
    """Upload a model file to ``out_dir`` when that is a URI (shared storage); return where it went.

    >>> publish_model(Path("/tmp/x/best_model.pt"), "/tmp/x") is None
    True
    """
    if not storage.is_uri(out_dir):
        return None
    return storage.upload(path, storage.join(out_dir, Path(path).name))
