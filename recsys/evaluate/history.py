"""What a model reads about a user when it answers a test-split query.

The test split's seen mask is the user's training *and* validation items
(:meth:`~recsys.evaluate.context.EvalContext.masks`). A model that reads the user's
history when it scores (``Recommender.reads_history``: sasrec, two_tower, content,
finetune) reads, for a test query, the same interactions: the training history in
time order, then the validation interactions in time order. Without them a
sequential model would be asked, under ``leave_last``, for the item two steps ahead
of what it reads (the usual protocol, e.g. Kang & McAuley 2018, feeds the validation
item). ``eval.query_history=train`` keeps the training history alone. Models that
do not read histories at query time (mf, lightgcn, pop, ...) are unaffected; nothing
is retrained.

>>> indptr, items = extend_histories(np.array([0, 2, 3]), np.array([5, 6, 7]), np.array([0, 1, 1]),
...                                  np.array([8, 9, 4]))
>>> indptr.tolist(), items.tolist()
([0, 3, 6], [5, 6, 8, 7, 9, 4])
"""

from __future__ import annotations

import copy

import numpy as np
import torch

QUERY_HISTORIES = ("train_val", "train")


def extend_histories(indptr: np.ndarray, items: np.ndarray, extra_users: np.ndarray,
                     extra_items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each user's items (CSR ``indptr``/``items``) followed by that user's ``extra_items``, both in order.

    ``extra_users``/``extra_items`` are pairs in the order they happened; a stable sort by
    user keeps that order within each user.
    """
    indptr, items = np.asarray(indptr, dtype=np.int64), np.asarray(items, dtype=np.int64)
    extra_users, extra_items = np.asarray(extra_users, dtype=np.int64), np.asarray(extra_items, dtype=np.int64)
    n_users = len(indptr) - 1
    if len(extra_users) and (extra_users.min() < 0 or extra_users.max() >= n_users):
        raise ValueError(f"extra users must lie in 0..{n_users - 1}")
    order = np.argsort(extra_users, kind="stable")
    extra_users, extra_items = extra_users[order], extra_items[order]
    extra_counts = np.bincount(extra_users, minlength=n_users)
    out_indptr = np.zeros(n_users + 1, dtype=np.int64)
    out_indptr[1:] = np.cumsum(np.diff(indptr) + extra_counts)
    own_users = np.repeat(np.arange(n_users), np.diff(indptr))
    # own items keep their rank within the user; extra ones follow them
    own_slots = out_indptr[own_users] + (np.arange(len(items)) - indptr[own_users])
    extra_rank = np.arange(len(extra_users)) - np.searchsorted(extra_users, extra_users, side="left")
    extra_slots = out_indptr[extra_users] + np.diff(indptr)[extra_users] + extra_rank
    out_items = np.empty(out_indptr[-1], dtype=np.int64)
    out_items[own_slots], out_items[extra_slots] = items, extra_items
    return out_indptr, out_items


def query_model(model, ctx, split: str, query_history: str = "train_val"):
    """``model`` as it answers queries on ``split``: for ``test`` (with ``query_history=train_val``) a
    shallow copy whose history buffers hold each user's training then validation interactions, when
    the model reads histories at query time and the context knows the validation order; else ``model``.

    The copy shares every parameter with ``model``; ``model`` itself is not changed.
    """
    if split != "test" or query_history != "train_val" or not getattr(model, "reads_history", False):
        return model
    val_order = getattr(ctx, "val_order", None)
    if val_order is None or not len(val_order[0]):
        return model
    device = model.history_items.device
    indptr, items = extend_histories(model.history_indptr.cpu().numpy(), model.history_items.cpu().numpy(),
                                     *val_order)
    copied = copy.copy(model)                      # nn.Module: a new __dict__, the same parameters and submodules
    copied._buffers = dict(model._buffers)         # its own buffer table, so the original keeps its history
    copied.history_indptr = torch.from_numpy(indptr).to(device)
    copied.history_items = torch.from_numpy(items).to(device)
    return copied
