"""Feature importance on models whose answer is known; the trained model is never changed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.diagnose.attribution import grad_x_input, grad_x_input_rows
from recsys.diagnose.importance import (EvalData, ablated, drop_row, feature_tensors, importance_rows, permuted,
                                        swapped, text_field_rows, truncated_history)
from recsys.evaluate.useritems import UserItems
from recsys.models.base import tiny_inputs
from recsys.models.registry import ModelSettings, build_model
from recsys.models.sasrec import SASRecConfig
from recsys.models.two_tower import TwoTowerConfig
from tests.diagnose.known_models import TextOnly, assert_unchanged, clustered, snapshot

METHODS = ["ablation", "permutation"]


def known():
    inputs, held, seen = clustered()
    model = TextOnly(inputs).eval()
    return model, EvalData(held, seen, "ndcg", 5)


def by_key(rows):
    return {(r["feature"], r["method"]): r for r in rows}


def test_a_text_only_model_loses_nothing_without_ids_and_much_without_text():
    model, data = known()
    rows = by_key(importance_rows(model, data, methods=METHODS, n_samples=300))
    assert set(rows) == {(g, m) for g in ("text", "item_id", "user_id") for m in METHODS} | {
        ("history_length", "ablation")}
    for group in ("item_id", "user_id"):
        for method in METHODS:
            row = rows[(group, method)]
            assert row["drop"] == 0.0 and row["ci_low"] == 0.0 and row["ci_high"] == 0.0, (group, method)
            assert row["value"] == row["baseline_value"]
    base = rows[("text", "ablation")]["baseline_value"]
    assert base > 0.5                                      # the clusters make the task easy with text
    for method in METHODS:
        text = rows[("text", method)]
        assert text["drop"] > 0.3 and text["ci_low"] > 0.0, method
    assert rows[("text", "permutation")]["n_repeats"] == 3
    assert all(r["n_users"] == 40 and r["split"] == "val" and r["k"] == 5 for r in rows.values())


def test_permuting_or_ablating_a_constant_feature_changes_nothing():
    inputs, held, seen = clustered(constant_text=True)
    model = TextOnly(inputs).eval()
    rows = by_key(importance_rows(model, EvalData(held, seen, "ndcg", 5), methods=METHODS, groups=["text"],
                                  n_samples=100))
    assert rows[("text", "permutation")]["drop"] == 0.0
    assert rows[("text", "ablation")]["drop"] == 0.0


def test_groups_follow_the_model_and_missing_groups_get_no_row():
    mf = build_model("mf", ModelSettings().mf, tiny_inputs())
    assert set(feature_tensors(mf)) == {"item_id", "user_id"}
    assert feature_tensors(mf)["item_id"] == ["item_embedding.weight", "item_bias.weight"]
    pop = build_model("pop", ModelSettings().pop, tiny_inputs())
    assert feature_tensors(pop) == {}
    sasrec = build_model("sasrec", SASRecConfig(dim=8, heads=2, max_len=3), tiny_inputs(text_dim=5))
    assert set(feature_tensors(sasrec)) == {"text", "item_id", "history_length"}
    data = EvalData(UserItems.from_pairs([0, 1], [3, 0], n_users=2, n_items=4), None, "ndcg", 2)
    rows = importance_rows(mf, data, methods=METHODS, groups=["text", "history_length", "item_id"], n_samples=20)
    assert {r["feature"] for r in rows} == {"item_id"}
    assert importance_rows(pop, data, methods=METHODS, n_samples=20) == []


def test_history_truncation_keeps_each_users_most_recent_items():
    indptr, items = torch.tensor([0, 4, 4, 6]), torch.tensor([10, 11, 12, 13, 20, 21])
    new = truncated_history(indptr, items, keep=2)
    assert new["history_indptr"].tolist() == [0, 2, 2, 4]
    assert new["history_items"].tolist() == [12, 13, 20, 21]


def test_ablation_values_and_permutations_are_what_the_docs_say():
    model = build_model("two_tower", TwoTowerConfig(dim=4, width=8), tiny_inputs(text_dim=3))
    text = ablated(model, "text")["item_text"]
    assert torch.allclose(text, model.item_text.mean(0, keepdim=True).expand_as(text))
    ids = ablated(model, "item_id")["item_id.weight"]
    assert ids.abs().sum() == 0
    shuffled = permuted(model, "item_id", torch.Generator().manual_seed(0))["item_id.weight"]
    assert torch.equal(shuffled[-1], model.item_id.weight[-1])          # the padding row stays in place
    assert sorted(map(tuple, shuffled[:-1].tolist())) == sorted(map(tuple, model.item_id.weight[:-1].tolist()))


def trained_like(name: str, config):
    torch.manual_seed(0)
    inputs, _, _ = clustered(n_users=12)
    model = build_model(name, config, inputs)
    return model, inputs


@pytest.mark.parametrize("name, config", [
    ("two_tower", TwoTowerConfig(dim=4, width=8, item_bias=True, use_user_id=True, history_vectors="separate")),
    ("sasrec", SASRecConfig(dim=4, heads=2, max_len=3)),
    ("mf", ModelSettings().mf),
])
def test_every_measure_leaves_the_model_exactly_as_it_was(name, config):
    model, inputs = trained_like(name, config)
    _, held, seen = clustered(n_users=12)
    data = EvalData(held, seen, "ndcg", 5)
    for training in (True, False):
        model.train(training)
        before = snapshot(model)
        importance_rows(model, data, methods=METHODS, n_samples=20)
        grad_x_input_rows(model, batches=2, batch_size=4, n_samples=20)
        text_field_rows(model, data, {"genres": np.zeros(tuple(inputs.item_text.shape), np.float32)}, n_samples=20)
        assert_unchanged(model, before, training)


def test_a_failure_inside_a_swap_still_restores_the_model():
    model, _ = trained_like("mf", ModelSettings().mf)
    before = snapshot(model)
    with pytest.raises(RuntimeError):
        with swapped(model, ablated(model, "item_id")):
            assert float(model.item_embedding.weight.abs().sum()) == 0.0
            raise RuntimeError("stop")
    assert_unchanged(model, before, model.training)


def test_grad_x_input_is_zero_exactly_for_inputs_the_loss_never_reads():
    model, _ = known()
    values = grad_x_input(model, batches=3, batch_size=8)
    assert set(values) == {"text", "item_id", "user_id"}
    assert (values["item_id"] == 0).all() and (values["user_id"] == 0).all()
    assert (values["text"] > 0).all()
    rows = {r["feature"]: r for r in grad_x_input_rows(model, batches=3, batch_size=8, n_samples=50)}
    assert rows["text"]["method"] == "grad_x_input" and rows["text"]["split"] == "train"
    assert rows["text"]["n_repeats"] == 3 and rows["text"]["drop"] == pytest.approx(values["text"].mean())


def test_grad_x_input_matches_a_hand_computed_gradient():
    # MF without bias: L = -log softmax(p_u . Q)_i, so dL/dp_u = Q^T (softmax - onehot); one example.
    model, _ = trained_like("mf", type(ModelSettings().mf)(dim=3, item_bias=False))
    values = grad_x_input(model, batches=1, batch_size=1, seed=0)
    rng = np.random.default_rng(0)
    from recsys.train.batching import pair_examples

    ex = pair_examples(model.history_indptr.numpy())
    chosen = rng.choice(len(ex.users), size=1, replace=False)
    u, item = int(ex.users[chosen][0]), int(model.history_items[ex.positions[chosen][0]])
    p, q = model.user_embedding.weight.detach()[u].double(), model.item_embedding.weight.detach().double()
    soft = torch.softmax(q @ p, dim=0)
    soft[item] -= 1.0
    grad_p = q.T @ soft
    grad_q = torch.outer(soft, p)
    assert values["user_id"][0] == pytest.approx(float((grad_p * p).norm()), rel=1e-5)
    assert values["item_id"][0] == pytest.approx(float((grad_q * q).norm()), rel=1e-5)


def test_text_field_rows_swap_the_text_and_name_the_field():
    model, data = known()
    rows = text_field_rows(model, data, {"genres": model.item_text.numpy().copy(),
                                         "description": np.ones(tuple(model.item_text.shape), np.float32)},
                           n_samples=100)
    genres, description = rows
    assert (genres["feature"], genres["feature_group"], genres["method"]) == ("genres", "text_field", "ablation")
    assert genres["drop"] == 0.0                       # same vectors: nothing lost
    assert description["drop"] > 0.3                   # every item alike: the ranking is lost


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=3, max_size=40), st.integers(0, 5))
def test_the_interval_contains_the_point_estimate(pairs, seed):
    base, values = np.array(pairs).T
    data = EvalData(UserItems.from_pairs([0], [0], n_users=1, n_items=1), None)
    row = drop_row(base, values, feature="text", method="ablation", data=data, n_samples=200, seed=seed)
    assert row["ci_low"] - 1e-12 <= row["drop"] <= row["ci_high"] + 1e-12
    assert row["drop"] == pytest.approx(float(np.mean(base - values)))


def test_known_answers_reach_the_feature_rules():
    from recsys.diagnose.config import DiagnoseConfig
    from recsys.diagnose.stage import DiagnoseResult, judge

    inputs, held, seen = clustered(n_users=60)
    clean = inputs.item_text.clone()
    inputs.item_text = clean + 0.6 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    model = TextOnly(inputs).eval()
    data = EvalData(held, seen, "ndcg", 10)
    rows = importance_rows(model, data, methods=METHODS, n_samples=300)
    rows += text_field_rows(model, data, {"noise": clean.numpy()}, n_samples=300)   # without it: clean clusters
    rows = [dict(r, dataset="synthetic", model="text_only") for r in rows]
    findings = judge({}, DiagnoseResult(feature_importance=rows), DiagnoseConfig())
    codes = {(f.code, f.where.get("feature")) for f in findings}
    assert codes == {("ID_EMBEDDINGS_UNUSED", "item_id"), ("TEXT_DOMINANT", "text"), ("TEXT_FIELD_HURTS", "noise")}
