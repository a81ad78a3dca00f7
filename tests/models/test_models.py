"""Model contract: shapes, the scoring interface, seeds, gradients, cold items, hand-computed scores."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from recsys.errors import ConfigError
from recsys.models.base import Batch, ModelInputs, tiny_inputs
from recsys.models.registry import BUILTINS, ModelSettings, build_model
from recsys.train.batching import epoch_examples
from recsys.train.losses import softmax_loss
from tests.train.blocks import block_data

# finetune is built over cached token states of real item texts: tests/models/test_finetune.py runs
# these contract checks on it with a tiny BERT
BUILT_FROM_INPUTS = [spec.name for spec in BUILTINS if spec.name != "finetune"]   # plugins: test_contract.py

SMALL = ModelSettings()
SMALL.mf = replace(SMALL.mf, dim=8)
SMALL.content = replace(SMALL.content, dim=8)
SMALL.two_tower = replace(SMALL.two_tower, dim=8, width=16)
SMALL.sasrec = replace(SMALL.sasrec, dim=8, heads=2, max_len=4)


def build(name: str, inputs: ModelInputs, seed: int = 0, settings: ModelSettings = SMALL):
    torch.manual_seed(seed)
    return build_model(name, getattr(settings, name), inputs)


def some_batch(model, data) -> Batch:
    examples = epoch_examples(data.indptr, model.example_kind, model.window_length)
    return Batch(torch.from_numpy(examples.users[:6]), torch.from_numpy(examples.positions[:6]))


@pytest.fixture(scope="module")
def blocks():
    data, text = block_data(cold_per_group=1)
    return data, data.model_inputs(text)


@pytest.mark.parametrize("name", BUILT_FROM_INPUTS)
def test_score_interface_shapes_and_consistency(name, blocks):
    data, inputs = blocks
    model = build(name, inputs)
    users = torch.tensor([0, 5, 31])
    scores = model.score(users)
    assert scores.shape == (3, inputs.n_items)
    assert torch.isfinite(scores).all()
    scorer = model.scorer()
    assert torch.allclose(scorer(users), scores)
    assert torch.allclose(scorer(users[1:2]), scores[1:2], atol=1e-5)   # a user's scores do not depend on the batch
    assert not model.training                                             # scoring runs in eval mode


@pytest.mark.parametrize("name", BUILT_FROM_INPUTS)
def test_same_seed_same_model_other_seed_other_model(name, blocks):
    _, inputs = blocks
    a, b, c = build(name, inputs, 1), build(name, inputs, 1), build(name, inputs, 2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    if a.trainable:
        assert any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))


@pytest.mark.parametrize("name", [n for n in BUILT_FROM_INPUTS if n != "pop"])
def test_forward_feeds_every_parameter(name, blocks):
    """Every parameter gets a gradient from one loss (DDP needs no unused parameters)."""
    data, inputs = blocks
    settings = ModelSettings(**{**SMALL.__dict__})
    if name == "two_tower":   # switch every optional part on
        settings.two_tower = replace(SMALL.two_tower, use_user_id=True, pooling="attention", item_bias=True,
                                     history_vectors="separate")
    model = build(name, inputs, settings=settings)
    if not model.trainable:
        pytest.skip("zero-training variant")
    out = model(some_batch(model, data))
    assert out.queries.shape[0] == out.targets.shape[0] > 0
    assert out.items.shape == (inputs.n_items, out.queries.shape[1])
    softmax_loss(out).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_popularity_scores_are_training_counts():
    model = build("pop", tiny_inputs())
    assert model.score(torch.tensor([0, 1])).tolist() == [[1.0, 2.0, 1.0, 1.0]] * 2
    assert not model.trainable and not list(model.parameters())


def test_mf_score_is_dot_product_plus_item_bias():
    model = build("mf", tiny_inputs())
    with torch.no_grad():
        model.item_bias.weight[2] = 0.5
    p, q = model.user_embedding.weight[1].detach(), model.item_embedding.weight[2].detach()
    expected = float(p @ q) + 0.5
    assert model.score(torch.tensor([1]))[0, 2].item() == pytest.approx(expected, rel=1e-6)


def test_zero_training_content_is_cosine_to_mean_history():
    inputs = tiny_inputs(text_dim=3)
    model = build("content", inputs, settings=ModelSettings(content=replace(SMALL.content, projection="none")))
    text = inputs.item_text
    mean = (text[1] + text[3]) / 2                                          # user 1's history: items 1, 3
    expected = F.normalize(mean, dim=0) @ text.T
    assert torch.allclose(model.score(torch.tensor([1]))[0], expected, atol=1e-6)


def test_training_query_leaves_the_target_out_of_its_history():
    inputs = tiny_inputs(text_dim=3)
    model = build("content", inputs, settings=ModelSettings(content=replace(SMALL.content, projection="none")))
    out = model(Batch(torch.tensor([0]), torch.tensor([1])))                # user 0, target item 1 (position 1)
    text = inputs.item_text
    assert out.targets.tolist() == [1]
    assert torch.allclose(out.queries[0], F.normalize((text[0] + text[2]) / 2, dim=0), atol=1e-6)


def test_cold_items_are_scored_from_their_text():
    inputs = tiny_inputs(text_dim=3)
    inputs.n_warm_items = 3                                                  # item 3 is cold ...
    inputs.item_text[3] = inputs.item_text[0]                                # ... with item 0's text
    no_id = ModelSettings(two_tower=replace(SMALL.two_tower, use_item_id=False, dropout=0.0))
    model = build("two_tower", inputs, settings=no_id)
    scores = model.score(torch.tensor([0, 1]))
    assert torch.allclose(scores[:, 3], scores[:, 0])
    with_id = build("two_tower", inputs)
    assert with_id.item_id.weight.shape[0] == 4 and torch.equal(with_id.item_id.weight[3], torch.zeros(8))
    vectors = with_id.eval().item_vectors()
    assert torch.allclose(vectors[3], F.normalize(with_id.item_tower(inputs.item_text[3]), dim=0), atol=1e-6)


def test_sasrec_is_causal():
    inputs = tiny_inputs(text_dim=3)
    model = build("sasrec", inputs).eval()
    a = torch.tensor([[0, 1, 2, 3]])
    b = torch.tensor([[0, 1, 3, 0]])                                         # differs from position 2 on
    with torch.no_grad():
        ha, hb = model._encode(a), model._encode(b)
    assert torch.allclose(ha[0, :2], hb[0, :2], atol=1e-6)
    assert not torch.allclose(ha[0, 2], hb[0, 2])


def test_sasrec_user_vector_reads_the_end_of_the_history():
    data, text = block_data()
    inputs = data.model_inputs(text)
    model = build("sasrec", inputs).eval()
    users = torch.tensor([3])
    end = int(data.indptr[4])
    window = torch.from_numpy(data.items[end - 4:end])[None, :]
    with torch.no_grad():
        expected = model._encode(window)[0, -1]
        got = model.user_vectors(users, model.item_vectors())[0]
    assert torch.allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("override, setting", [
    (dict(pooling="max"), "model.two_tower.pooling"),
    (dict(use_text=False, use_item_id=False), "model.two_tower.use_text"),
    (dict(temperature=0.0), "model.two_tower"),
])
def test_bad_two_tower_settings_name_the_setting(override, setting):
    settings = ModelSettings(two_tower=replace(SMALL.two_tower, **override))
    with pytest.raises(ConfigError, match=setting.replace(".", r"\.")):
        build("two_tower", tiny_inputs(text_dim=3), settings=settings)


def test_text_models_without_text_say_what_to_do():
    for name in ("content", "two_tower", "sasrec"):
        with pytest.raises(ConfigError, match="embed stage"):
            build(name, tiny_inputs())


def test_models_without_a_text_path_need_no_text():
    settings = ModelSettings(two_tower=replace(SMALL.two_tower, use_text=False),
                             sasrec=replace(SMALL.sasrec, use_text=False))
    for name in ("mf", "two_tower", "sasrec"):
        assert build(name, tiny_inputs(), settings=settings).score(torch.tensor([0])).shape == (1, 4)


def test_empty_history_gives_finite_scores():
    inputs = ModelInputs(n_users=2, n_items=3, n_warm_items=3, history_indptr=torch.tensor([0, 0, 2]),
                         history_items=torch.tensor([0, 1]), item_counts=torch.tensor([1., 1., 0.]),
                         item_text=torch.eye(3))
    settings = ModelSettings(two_tower=replace(SMALL.two_tower, pooling="attention"))
    for name in BUILT_FROM_INPUTS:
        assert torch.isfinite(build(name, inputs, settings=settings).score(torch.tensor([0, 1]))).all(), name
