"""Embedding health of a trained model: its item vectors and ID tables, and the item-norm side table.

Rows of the ``embedding_health`` report table, computed with the statistics of
:mod:`recsys.embed.health` (the one place effective rank, isotropy and mean cosine
are defined), per model:

- ``output``: ``model.item_vectors()``, the vectors every item is scored with (dot-product
  models; a model with its own scorer has none);
- ``item_id`` / ``history_id`` / ``user_id``: the ID tables the model declares in
  ``feature_tensors()`` (rows of items or users; the zero padding row of an ID table is left out).

``dead_rows`` of an ID table counts rows that never trained: norm below
``dead_threshold``, or, when the initial weights are known, rows that are still their
initial vector or that vector shrunk by decoupled weight decay (AdamW moves a row that
never gets a gradient only along its own direction, towards zero). ``details`` says which
test was used.

The side table ``item_norms`` (for NORM_POPULARITY_COUPLING) has, per item of ``output``
and of the item ID table, its training interactions (``popularity``) and vector norm.

>>> from recsys.models.base import tiny_inputs
>>> from recsys.models.registry import ModelSettings, build_model
>>> model = build_model("mf", ModelSettings().mf, tiny_inputs())
>>> [(r["embedding"], r["n_rows"], r["dead_rows"]) for r in model_health_rows(model, init=model)]
[('output', 4, 0), ('item_id', 4, 4), ('user_id', 2, 2)]
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import polars as pl
import torch
import torch.nn as nn

from recsys.diagnose.importance import table_rows, tensor
from recsys.diagnose.inputs import ITEM_NORMS_SCHEMA
from recsys.embed.health import embedding_health
from recsys.models.base import Recommender
from recsys.models.contract import check_feature_tensors

OUTPUT = "output"
ID_GROUPS = ("item_id", "user_id")


def id_tables(model: nn.Module) -> dict[str, str]:
    """Embedding name -> tensor name of the model's ID tables, from the tensors it declares.

    The vector tables (2-D, wider than one column: biases are left out) of the ``item_id`` and
    ``user_id`` groups of ``feature_tensors()``; the first of a group is named after the group,
    any further one after its module (``history_id`` of a two-tower with separate history vectors).

    >>> from recsys.models.base import tiny_inputs
    >>> from recsys.models.registry import ModelSettings, build_model
    >>> id_tables(build_model("mf", ModelSettings().mf, tiny_inputs()))
    {'item_id': 'item_embedding.weight', 'user_id': 'user_embedding.weight'}
    """
    out: dict[str, str] = {}
    groups = check_feature_tensors(model)
    for group in ID_GROUPS:
        for name in groups.get(group, []):
            value = tensor(model, name)
            if value.dim() != 2 or value.shape[1] < 2:
                continue
            key = group if group not in out else name.removesuffix(".weight").replace(".", "_")
            out[key] = name
    return out


def _weights(model: nn.Module, name: str) -> np.ndarray:
    return tensor(model, name).detach().cpu().numpy()[:table_rows(model, name)]


def _output_vectors(model: nn.Module) -> Optional[np.ndarray]:
    """``item_vectors()`` of a dot-product model in eval mode; None for a model that has none."""
    if not callable(getattr(model, "item_vectors", None)):
        return None
    with torch.no_grad():
        training = model.training
        model.eval()
        try:
            output = model.item_vectors().detach().cpu().numpy()
        except NotImplementedError:
            output = None
        finally:
            model.train(training)
    return output


def untrained_rows(trained: np.ndarray, initial: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
    """Rows still equal to ``c * initial`` with ``0 <= c <= 1`` (within ``tolerance`` of each row's scale).

    >>> init = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> untrained_rows(np.array([[0.9, 0.0], [0.5, 2.0], [1.0, 1.0]]), init).tolist()
    [True, False, True]
    """
    trained, initial = np.asarray(trained, np.float64), np.asarray(initial, np.float64)
    init_sq = (initial ** 2).sum(axis=1)
    scale = np.where(init_sq > 0, (trained * initial).sum(axis=1) / np.where(init_sq > 0, init_sq, 1.0), 0.0)
    residual = np.linalg.norm(trained - scale[:, None] * initial, axis=1)
    size = np.maximum(np.linalg.norm(initial, axis=1), 1e-12)
    return (init_sq > 0) & (scale >= -tolerance) & (scale <= 1 + tolerance) & (residual <= tolerance * size)


def model_health_rows(model: Recommender, *, init: Optional[nn.Module] = None, sample: int = 10_000,
                      dead_threshold: float = 1e-6, init_tolerance: float = 1e-6, seed: int = 0) -> list[dict]:
    """``embedding_health`` rows (without run, dataset and model) of ``model``'s output vectors and ID tables.

    ``init``: the same model at initialisation (e.g. rebuilt with the training seed); when given,
    ID rows that never moved off their initial direction count as dead.
    """
    output = _output_vectors(model)
    rows = []
    if output is not None:
        row = embedding_health(output, sample=sample, dead_threshold=dead_threshold, seed=seed)
        rows.append(dict(row, embedding=OUTPUT))
    for embedding, module in id_tables(model).items():
        weights = _weights(model, module)
        row = embedding_health(weights, sample=sample, dead_threshold=dead_threshold, seed=seed)
        small = np.linalg.norm(weights.astype(np.float64), axis=1) < dead_threshold
        test = f"norm < {dead_threshold}"
        if init is not None and module in id_tables(init).values():
            initial = _weights(init, module)
            if initial.shape == weights.shape:
                small |= untrained_rows(weights, initial, init_tolerance)
                test += " or still the (decayed) initial vector"
        row["dead_rows"] = int(small.sum())
        row["details"] = {**row["details"], "module": module.removesuffix(".weight"), "dead_test": test}
        rows.append(dict(row, embedding=embedding))
    return rows


def item_norms(model: Recommender, item_ids: Optional[list[str]] = None) -> pl.DataFrame:
    """The ``item_norms`` side table of one model: per item of ``output`` and ``item_id``, popularity and norm.

    >>> from recsys.models.base import tiny_inputs
    >>> from recsys.models.registry import ModelSettings, build_model
    >>> frame = item_norms(build_model("pop", ModelSettings().pop, tiny_inputs()))
    >>> frame.select("embedding", "popularity", "norm").rows()[:2]
    [('output', 1.0, 1.0), ('output', 2.0, 2.0)]
    """
    popularity = model.item_counts.detach().cpu().numpy().astype(np.float64)
    output = _output_vectors(model)
    tables = {} if output is None else {OUTPUT: output}
    if "item_id" in id_tables(model):
        tables["item_id"] = _weights(model, id_tables(model)["item_id"])
    ids = np.asarray(item_ids if item_ids is not None else [str(i) for i in range(len(popularity))], dtype=object)
    frames = []
    for embedding, vectors in tables.items():
        n = len(vectors)
        frames.append(pl.DataFrame({
            "model": [getattr(model, "name", None)] * n, "embedding": [embedding] * n, "item_id": ids[:n].tolist(),
            "popularity": popularity[:n], "norm": np.linalg.norm(vectors.astype(np.float64), axis=1)},
            schema=ITEM_NORMS_SCHEMA))
    return pl.concat(frames) if frames else pl.DataFrame(schema=ITEM_NORMS_SCHEMA)
