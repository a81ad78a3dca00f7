"""LightGCN: normalised graph and propagation against a dense hand-computed case; L2; cold items; checkpoints."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from recsys.models.base import Batch, ModelInputs
from recsys.models.pop import PopConfig, Popularity
from recsys.models.lightgcn import LightGCN, LightGCNConfig, interaction_pairs, normalized_adjacency, propagate
from recsys.train.config import TrainConfig
from recsys.train.loop import fit, validate
from tests.train.blocks import block_data


def tiny_graph() -> ModelInputs:
    """User 0 saw items 0, 1 (item 1 twice); user 1 saw item 1; item 2 is warm but unseen; item 3 is cold."""
    return ModelInputs(n_users=2, n_items=4, n_warm_items=3, history_indptr=torch.tensor([0, 3, 4]),
                       history_items=torch.tensor([0, 1, 1, 1]), item_counts=torch.tensor([1.0, 3.0, 0.0, 0.0]))


# Nodes u0, u1, i0, i1, i2, i3. Degrees: u0 = 2 (i0, i1; the repeat counts once), u1 = 1, i0 = 1, i1 = 2.
# Â[u, i] = 1 / sqrt(deg u * deg i):  u0-i0: 1/sqrt(2), u0-i1: 1/2, u1-i1: 1/sqrt(2).
S = 2 ** -0.5
HAND = np.array([[0, 0, S, 0.5, 0, 0],
                 [0, 0, 0, S, 0, 0],
                 [S, 0, 0, 0, 0, 0],
                 [0.5, S, 0, 0, 0, 0],
                 [0, 0, 0, 0, 0, 0],
                 [0, 0, 0, 0, 0, 0]])


def test_normalized_adjacency_equals_the_hand_computed_matrix():
    users, items = interaction_pairs(torch.tensor([0, 3, 4]), torch.tensor([0, 1, 1, 1]))
    assert (users.tolist(), items.tolist()) == ([0, 0, 1], [0, 1, 1])
    dense = normalized_adjacency(users, items, n_users=2, n_items=4).to_dense().numpy()
    np.testing.assert_allclose(dense, HAND, atol=1e-6)


@pytest.mark.parametrize("layers", [0, 1, 3])
def test_propagation_equals_the_dense_layer_mean(layers):
    torch.manual_seed(0)
    model = LightGCN(LightGCNConfig(dim=5, layers=layers), tiny_graph())
    layer0 = np.concatenate([model.user_embedding.weight.detach().numpy(),
                             model.item_embedding.weight.detach().numpy()[:3],
                             np.zeros((1, 5))])                              # cold item 3: zero row
    powers = [np.linalg.matrix_power(HAND, k) @ layer0 for k in range(layers + 1)]
    expected = np.mean(powers, axis=0)                                    # (6, 5)
    np.testing.assert_allclose(model.item_vectors().detach().numpy(), expected[2:], atol=1e-5)
    scores = model.score(torch.tensor([0, 1])).numpy()
    np.testing.assert_allclose(scores, expected[:2] @ expected[2:].T, atol=1e-5)


def test_cold_and_unseen_items_have_zero_vectors_and_zero_scores():
    model = LightGCN(LightGCNConfig(dim=4, layers=2), tiny_graph())
    vectors = model.item_vectors().detach()
    assert torch.count_nonzero(vectors[3]) == 0                           # cold: no row, no edge
    assert torch.allclose(vectors[2], model.item_embedding.weight[2].detach() / 3)   # warm, no edge: row / 3
    assert torch.all(model.score(torch.tensor([0, 1]))[:, 3] == 0)


def test_l2_is_the_batch_layer0_norms():
    torch.manual_seed(0)
    model = LightGCN(LightGCNConfig(dim=4, layers=1, l2=0.3), tiny_graph())
    out = model(Batch(torch.tensor([0, 1]), torch.tensor([0, 3])))         # targets: item 0, item 1
    u, i = model.user_embedding.weight.detach(), model.item_embedding.weight.detach()
    expected = 0.3 * 0.5 * torch.stack([u[0].pow(2).sum() + i[0].pow(2).sum(), u[1].pow(2).sum() + i[1].pow(2).sum()])
    assert out.targets.tolist() == [0, 1]
    assert torch.allclose(out.regularizer, expected)
    assert LightGCN(LightGCNConfig(dim=4, l2=0.0), tiny_graph())(Batch(torch.tensor([0]),
                                                                        torch.tensor([0]))).regularizer is None


def test_checkpoint_state_rebuilds_the_graph():
    torch.manual_seed(0)
    model = LightGCN(LightGCNConfig(dim=4, layers=2), tiny_graph())
    copy = LightGCN(LightGCNConfig(dim=4, layers=2), ModelInputs.placeholder(tiny_graph().spec()))
    _ = copy.score(torch.tensor([0]))                                     # builds (and caches) the empty graph
    copy.load_state_dict(model.state_dict())
    assert torch.allclose(copy.score(torch.tensor([0, 1])), model.score(torch.tensor([0, 1])))


def test_lightgcn_learns_the_block_structure_with_each_loss():
    data, text = block_data()
    cfg = TrainConfig(epochs=20, batch_size=32, lr=0.01, engine="local", patience=0, negatives=8)
    torch.manual_seed(0)
    pop = validate(Popularity(PopConfig(), data.model_inputs()), data, cfg)
    for loss in ("softmax", "bpr"):
        torch.manual_seed(0)
        model = LightGCN(LightGCNConfig(dim=16, layers=2), data.model_inputs())
        model.name = "lightgcn"
        result = fit(model, data, replace(cfg, loss=loss))
        assert result.state.best_metric >= 0.6 and result.state.best_metric > pop + 0.4, loss


@pytest.mark.ray
def test_two_ray_train_workers_match_one_process(tmp_path):
    """DDP over two workers (each half of every batch, gradients all-reduced) gives one process's weights."""
    from recsys.train._ray import train_with_ray
    from recsys.train.stage import new_model, train_local

    data, _ = block_data()
    config = LightGCNConfig(dim=16, layers=2, l2=1e-3)
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.01, engine="ray", num_workers=2, cpus_per_worker=0.5,
                      patience=0, log_every=2, probe_every=3)
    distributed = train_with_ray("lightgcn", config, data, None, cfg, tmp_path / "ray")
    single = train_local("lightgcn", config, data, None, cfg, tmp_path / "local")
    a = torch.load(distributed.path, weights_only=True)["state_dict"]
    b = torch.load(single.path, weights_only=True)["state_dict"]
    assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a) < 1e-4
    assert distributed.state.val_history == pytest.approx(single.state.val_history, abs=1e-3)
    assert distributed.state.step == single.state.step and distributed.state.status == "completed"
    initial = new_model("lightgcn", config, data, None, cfg.seed).state_dict()
    assert float((a["user_embedding.weight"] - initial["user_embedding.weight"]).abs().max()) > 1e-2   # it trained
