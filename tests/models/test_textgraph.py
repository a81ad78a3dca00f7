"""Text-graph hybrid: no ID table, users from their history's text, brand-new items scored from text alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recsys.models.base import ModelInputs
from recsys.models.pop import PopConfig, Popularity
from recsys.models.textgraph import TextGraph, TextGraphConfig
from recsys.train.config import TrainConfig
from recsys.train.loop import fit, validate
from tests.train.blocks import block_data

GROUPS, PER_GROUP, COLD = 4, 8, 2
CFG = TrainConfig(epochs=15, batch_size=32, lr=0.01, engine="local", patience=0)


@pytest.fixture(scope="module")
def trained():
    data, text = block_data(n_groups=GROUPS, items_per_group=PER_GROUP, cold_per_group=COLD)
    torch.manual_seed(0)
    model = TextGraph(TextGraphConfig(dim=16, width=32), data.model_inputs(text))
    model.name = "textgraph"
    result = fit(model, data, CFG)
    model.load_state_dict(result.best_state)
    return data, text, model, result


def test_no_id_parameters_and_text_is_the_only_feature():
    data, text = block_data()
    model = TextGraph(TextGraphConfig(dim=8, width=16), data.model_inputs(text))
    assert all(name.startswith("text_mlp.") for name, _ in model.named_parameters())
    assert model.feature_tensors() == {"text": ["item_text"]}


def test_without_propagation_a_user_is_the_mean_of_their_distinct_items():
    text = F.normalize(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    inputs = ModelInputs(n_users=1, n_items=3, n_warm_items=3, history_indptr=torch.tensor([0, 3]),
                         history_items=torch.tensor([0, 2, 2]), item_counts=torch.tensor([1.0, 0.0, 2.0]),
                         item_text=text)
    torch.manual_seed(0)
    model = TextGraph(TextGraphConfig(dim=5, width=7, layers=0, tau=0.5), inputs).eval()
    mapped = model.text_mlp(text).detach()                                 # (3, 5)
    user = F.normalize((mapped[0] + mapped[2]) / 2, dim=0)                  # item 2 twice counts once
    expected = F.normalize(mapped, dim=1) @ user / 0.5
    assert torch.allclose(model.score(torch.tensor([0]))[0], expected, atol=1e-5)


def test_textgraph_learns_the_block_structure(trained):
    data, text, model, result = trained
    pop = validate(Popularity(PopConfig(), data.model_inputs()), data, CFG)
    assert result.state.best_metric >= 0.6 and result.state.best_metric > pop + 0.3


def test_a_brand_new_item_is_scored_from_its_text_alone(trained):
    data, text, model, _ = trained
    n_warm = GROUPS * PER_GROUP
    cold = np.arange(n_warm, n_warm + GROUPS * COLD)
    cold_group = (cold - n_warm) // COLD
    # Its final vector is its mapped text vector: nothing else about it was ever trained.
    mapped = F.normalize(model.text_mlp(torch.from_numpy(text[cold])), dim=1).detach()
    assert torch.allclose(model.item_vectors().detach()[cold], mapped, atol=1e-5)
    users = torch.arange(data.n_users)
    user_group = users.numpy() // 8
    scores = model.score(users).numpy()                                    # (U, N)
    warm_group = np.arange(n_warm) // PER_GROUP
    for u in range(data.n_users):
        own, other = cold[cold_group == user_group[u]], cold[cold_group != user_group[u]]
        assert scores[u, own].min() > scores[u, other].max()               # its group's new items first
        # ... and it ranks among its text neighbours: above every warm item of the other groups
        assert scores[u, own].min() > scores[u, :n_warm][warm_group != user_group[u]].max()


def test_checkpoint_state_rebuilds_the_same_scores(trained):
    data, text, model, _ = trained
    copy = TextGraph(model.config, ModelInputs.placeholder(data.model_inputs(text).spec()))
    copy.load_state_dict(model.state_dict())
    assert torch.allclose(copy.score(torch.arange(5)), model.score(torch.arange(5)), atol=1e-5)


def test_cold_items_make_a_share_of_the_steps_targets_edge_less_in_training_only():
    """With cold_items=1 every target of a step loses its edges: its vector in the step is its mapped text alone
    (as a cold item's is when scoring); cold_items=0 leaves the graph of the step as it was."""
    from recsys.models.base import Batch

    data, text = block_data()
    torch.manual_seed(0)
    plain = TextGraph(TextGraphConfig(dim=8, width=16), data.model_inputs(text))
    cold = TextGraph(TextGraphConfig(dim=8, width=16, cold_items=1.0), data.model_inputs(text))
    cold.load_state_dict(plain.state_dict())
    batch = Batch(torch.tensor([0, 1, 8]), torch.tensor([1, 3, data.indptr[8] + 2]))
    targets = plain.history_items[batch.positions]
    mapped = F.normalize(plain.text_mlp(plain.item_text[targets]), dim=1).detach()
    out = cold.train()(batch)
    assert torch.allclose(out.items[targets].detach(), mapped, atol=1e-6)          # edge-less in the step
    assert not torch.allclose(plain.train()(batch).items[targets].detach(), mapped, atol=1e-3)
    torch.testing.assert_close(cold.eval().item_vectors(), plain.eval().item_vectors())   # scoring: the full graph


def test_cold_items_must_be_a_share():
    from recsys.errors import ConfigError

    data, text = block_data()
    with pytest.raises(ConfigError, match="model.textgraph.cold_items"):
        TextGraph(TextGraphConfig(cold_items=1.5), data.model_inputs(text))
