"""Test queries of history-reading models read the validation interactions after the training ones."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from recsys.evaluate.config import EvalConfig
from recsys.evaluate.context import EvalContext
from recsys.evaluate.history import extend_histories, query_model
from recsys.evaluate.stage import evaluate_models
from recsys.models.base import ModelInputs, Recommender
from recsys.models.mf import MFConfig
from recsys.models.sasrec import SASRec, SASRecConfig
from recsys.models.registry import build_model
from recsys.train.data import TrainingData


def reference_extend(indptr, items, extra_users, extra_items):
    """Plain lists: each user's items, then their extra items in the given order."""
    n_users = len(indptr) - 1
    rows = [list(items[indptr[u]:indptr[u + 1]]) for u in range(n_users)]
    for user, item in zip(extra_users, extra_items):
        rows[user].append(item)
    return [0] + np.cumsum([len(r) for r in rows]).tolist(), [i for r in rows for i in r]


@pytest.mark.parametrize("seed", range(20))
def test_extended_histories_equal_a_plain_list_reference(seed):
    rng = np.random.default_rng(seed)
    n_users = int(rng.integers(1, 8))
    counts = rng.integers(0, 5, n_users)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    items = rng.integers(0, 30, indptr[-1])
    extra_users = rng.integers(0, n_users, int(rng.integers(0, 10)))
    extra_items = rng.integers(0, 30, len(extra_users))
    got_indptr, got_items = extend_histories(indptr, items, extra_users, extra_items)
    want_indptr, want_items = reference_extend(indptr, items, extra_users, extra_items)
    assert got_indptr.tolist() == want_indptr and got_items.tolist() == want_items


def test_an_extra_user_outside_the_table_is_refused():
    with pytest.raises(ValueError, match="0..1"):
        extend_histories(np.array([0, 1, 2]), np.array([3, 4]), np.array([2]), np.array([5]))


class NextItemOracle(Recommender):
    """Scores the item after the last one the user's history holds above 1, every other item below 1/2, the
    higher indices first (items are a chain; no user's held-out item is the last index)."""

    trainable = False
    reads_history = True

    def item_vectors(self) -> torch.Tensor:
        return torch.eye(self.n_items)                                            # (N, N)

    def user_vectors(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        last = self.history_items[self.history_indptr[users + 1] - 1]              # (B,)
        nxt = torch.nn.functional.one_hot((last + 1) % self.n_items, self.n_items).float()   # (B, N)
        return nxt + torch.arange(self.n_items) / (2 * self.n_items)                # (B, N)


def chain_world(n_users=6, n_items=12, length=6):
    """User u reads items u, u+1, ..., u+length-1 in this order: leave_last keeps the last for test and the
    one before for validation."""
    sequences = [[(u + t) % n_items for t in range(length)] for u in range(n_users)]
    train = [(u, i) for u, s in enumerate(sequences) for i in s[:-2]]
    val = [(u, s[-2]) for u, s in enumerate(sequences)]
    test = [(u, s[-1]) for u, s in enumerate(sequences)]
    pairs = [tuple(np.array(c) for c in zip(*part)) for part in (train, val, test)]
    data = TrainingData.from_arrays(*pairs[0], np.arange(len(train)), n_users=n_users, n_items=n_items)
    ctx = EvalContext.from_arrays(*pairs, n_users=n_users, n_items=n_items)
    return data, ctx


def test_a_sequential_test_query_reads_the_validation_item_and_predicts_the_next_one():
    data, ctx = chain_world()
    oracle = NextItemOracle(data.model_inputs())
    cfg = EvalConfig(k=[1], auc=False, engine="local", bootstrap_samples=10)
    with_val = evaluate_models({"oracle": oracle}, ctx, cfg)["oracle"]
    train_only = evaluate_models({"oracle": oracle}, ctx, replace(cfg, query_history="train"))["oracle"]
    assert with_val["val"].values["ndcg@1"].tolist() == [1.0] * 6                # val reads train: next item
    assert with_val["test"].values["ndcg@1"].tolist() == [1.0] * 6                # test reads train, then val
    assert train_only["test"].values["ndcg@1"].tolist() == [0.0] * 6              # two steps ahead: never
    assert oracle.history_items.numel() == data.nnz                                # the model is not changed


@pytest.mark.ray
def test_the_ray_engine_gives_test_queries_the_same_history():
    data, ctx = chain_world()
    oracle = NextItemOracle(data.model_inputs())
    cfg = EvalConfig(k=[1], auc=False, engine="ray", bootstrap_samples=10)
    rows = evaluate_models({"oracle": oracle}, ctx, cfg)["oracle"]
    assert rows["test"].values["ndcg@1"].tolist() == [1.0] * 6


def test_sasrec_answers_a_test_query_as_a_sasrec_built_on_train_then_val():
    data, ctx = chain_world(n_users=5, n_items=20, length=8)
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(dim=8, heads=2, max_len=4, dropout=0.0, use_text=False), data.model_inputs())
    queried = query_model(model, ctx, "test")
    indptr, items = extend_histories(data.indptr, data.items, *ctx.val_order)
    inputs = data.model_inputs()
    built = SASRec(model.config, replace(inputs, history_indptr=torch.from_numpy(indptr),
                                         history_items=torch.from_numpy(items)))
    built.load_state_dict(queried.state_dict())
    users = torch.arange(5)
    torch.testing.assert_close(queried.scorer()(users), built.scorer()(users))
    assert not torch.allclose(queried.scorer()(users), model.scorer()(users))        # the val item changed them
    assert queried.history_items.numel() == data.nnz + 5 and model.history_items.numel() == data.nnz
    assert next(queried.parameters()) is next(model.parameters())                   # shared, not copied


def test_models_that_do_not_read_histories_and_the_val_split_are_left_alone():
    data, ctx = chain_world()
    mf = build_model("mf", MFConfig(dim=4), data.model_inputs())
    oracle = NextItemOracle(data.model_inputs())
    assert query_model(mf, ctx, "test") is mf
    assert query_model(oracle, ctx, "val") is oracle
    assert query_model(oracle, ctx, "test", "train") is oracle
    assert query_model(oracle, replace(ctx, val_order=None), "test") is oracle


def test_an_unknown_query_history_setting_is_named():
    from recsys.errors import ConfigError
    from recsys.evaluate.config import check_eval_config

    with pytest.raises(ConfigError, match="eval.query_history"):
        check_eval_config(EvalConfig(query_history="val"))


def test_the_context_of_a_prepared_dataset_keeps_validation_in_time_order(tmp_path):
    """Two validation items per user, written newest first: the context orders them by timestamp."""
    import polars as pl

    from recsys.data.config import DataConfig, SplitConfig
    from recsys.data.prepare import prepare
    from tests.embed.fixtures import tiny_synthetic

    prepared = prepare(tiny_synthetic(n_items=40), DataConfig(cache_dir=str(tmp_path), engine="local"),
                       SplitConfig(protocol="temporal"))
    ctx = EvalContext.from_prepared(prepared, None, EvalConfig())
    val = prepared.split("val").sort(["user_idx", "timestamp"], maintain_order=True)
    assert ctx.val_order[0].tolist() == val["user_idx"].to_list()
    assert ctx.val_order[1].tolist() == val["item_idx"].to_list()
    assert isinstance(val, pl.DataFrame) and val.height > 0
