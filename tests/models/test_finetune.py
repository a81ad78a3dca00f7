"""The fine-tuned language-model recommender (``finetune``) and its token-state cache, on a tiny random BERT."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from recsys.embed.config import EncoderConfig
from recsys.embed.encoder import TextEncoder
from recsys.embed.tokens import cache_item_tokens, load_item_tokens
from recsys.errors import ConfigError
from recsys.models.base import Batch
from recsys.models.finetune import FineTune, FineTuneConfig
from recsys.models.registry import build_model
from recsys.train.batching import epoch_examples
from recsys.train.checkpoint import load_model, save_model
from recsys.train.config import TrainConfig
from recsys.train.data import TrainingData
from recsys.train.loop import fit, group_lr, make_optimizer
from tests.embed.fixtures import save_tiny_bert

TOPICS = ("football match goal", "cooking recipe kitchen", "guitar music concert")
N_ITEMS, N_USERS = 30, 24


def item_texts() -> list[str]:
    """Item i is about topic i % 3; the rest of the text tells items apart."""
    return [f"{TOPICS[i % 3]} number {i} {'long ' * (i % 4)}edition" for i in range(N_ITEMS)]


def topic_world() -> TrainingData:
    """User u likes topic u % 3: six training items of it, one more held out for validation."""
    rng = np.random.default_rng(0)
    users, items, val_users, val_items = [], [], [], []
    for u in range(N_USERS):
        own = rng.permutation(np.arange(u % 3, N_ITEMS, 3))
        users += [u] * 6
        items += own[:6].tolist()
        val_users.append(u)
        val_items.append(int(own[6]))
    return TrainingData.from_arrays(users, items, np.arange(len(users)), n_users=N_USERS, n_items=N_ITEMS,
                                    val_users=val_users, val_items=val_items)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tokens")


def tokens_for(bert, cache_root, train_layers=1, max_tokens=16, texts=None, pooling="mean"):
    texts = texts or item_texts()
    return cache_item_tokens(texts, [str(i) for i in range(len(texts))], bert, "tiny-sha", cache_root=cache_root,
                             train_layers=train_layers, max_tokens=max_tokens, pooling=pooling)


def small_config(tokens, **changes) -> FineTuneConfig:
    layers = tokens.n_layers - tokens.layer_from
    return replace(FineTuneConfig(train_layers=layers, max_tokens=tokens.states.shape[1], dim=8, width=16,
                                  negatives=6, max_history=10, token_cache=tokens.directory), **changes)


def build(tokens, data, seed=0, **changes) -> FineTune:
    torch.manual_seed(seed)
    return build_model("finetune", small_config(tokens, **changes), data.model_inputs())


# ----- the token cache -------------------------------------------------------------------------------------

def test_cache_is_reused_and_keyed_by_what_decides_the_states(bert, tmp_path):
    cache_root = tmp_path
    first = tokens_for(bert, cache_root)
    assert first.states.shape == (N_ITEMS, 16, 32) and first.mask.shape == (N_ITEMS, 16)
    assert first.layer_from == 1 and first.n_layers == 2
    # a planted marker in the files proves the second call reads them instead of running the encoder
    states = np.load(f"{first.directory}/states.npy")
    states[0, 0, 0] = 123.0
    np.save(f"{first.directory}/states.npy", states)
    again = tokens_for(bert, cache_root)
    assert again.directory == first.directory and float(again.states[0, 0, 0]) == 123.0
    others = {tokens_for(bert, cache_root, train_layers=2).directory,
              tokens_for(bert, cache_root, max_tokens=12).directory,
              tokens_for(bert, cache_root, texts=item_texts()[::-1]).directory}
    assert first.directory not in others and len(others) == 3
    assert load_item_tokens(first.directory).identity["max_tokens"] == 16


@pytest.mark.parametrize("train_layers, pooling", [(0, "mean"), (1, "mean"), (99, "mean"), (1, "cls")])
def test_trained_layers_over_cached_states_reproduce_the_whole_encoder(bert, tmp_path, train_layers, pooling):
    """Before training, the item text vectors equal the full encoder's pooled output (independent path)."""
    tokens = tokens_for(bert, tmp_path, train_layers=train_layers, pooling=pooling)
    reference = TextEncoder(EncoderConfig(path=str(bert), normalize=False, max_length=16, pooling=pooling,
                                          device="cpu")).encode(item_texts())
    model = build(tokens, topic_world(), train_layers=train_layers, pooling=pooling).eval()
    with torch.no_grad():
        text = model.catalogue_text()
    assert torch.allclose(text, torch.from_numpy(reference), atol=1e-5)
    assert torch.allclose(tokens.pretrained, torch.from_numpy(reference), atol=1e-5)
    n_blocks = len(model.encoder.layer)
    assert n_blocks == {0: 0, 1: 1, 99: 2}[train_layers]


def test_bad_settings_name_the_setting_and_other_splits_derive_their_states(bert, cache_root):
    tokens = tokens_for(bert, cache_root)
    data = topic_world()
    with pytest.raises(ConfigError, match="model.finetune.train_layers"):
        tokens_for(bert, cache_root, train_layers=-1)
    other = build(tokens, data, train_layers=2, max_tokens=12)      # the cache starts at layer 1 with 16 tokens
    assert other.spec["token_cache"] != tokens.directory and other.token_states.shape == (N_ITEMS, 12, 32)
    assert len(other.encoder.layer) == 2
    with pytest.raises(ConfigError, match="model.finetune.token_cache"):
        build_model("finetune", FineTuneConfig(), data.model_inputs())
    with pytest.raises(ConfigError, match="model.finetune.pooling"):
        build(tokens, data, pooling="max")


# ----- the model contract ----------------------------------------------------------------------------------

def test_scores_training_output_and_every_parameter_gets_a_gradient(bert, cache_root):
    data = topic_world()
    tokens = tokens_for(bert, cache_root)
    model = build(tokens, data)
    users = torch.tensor([0, 5, 11])
    scores = model.score(users)
    assert scores.shape == (3, N_ITEMS) and torch.isfinite(scores).all() and not model.training
    assert torch.allclose(model.scorer()(users[1:2]), scores[1:2], atol=1e-5)
    model.train()
    examples = epoch_examples(data.indptr, model.example_kind, model.window_length)
    batch = Batch(torch.from_numpy(examples.users[:8]), torch.from_numpy(examples.positions[:8]))
    out = model(batch)
    targets = data.items[examples.positions[:8]]
    # the loss sees only the batch's distinct items plus the sampled negatives, targets index into them
    assert len(set(targets.tolist())) <= out.items.shape[0] <= len(set(targets.tolist())) + 6
    loss = model.loss(batch, torch.Generator().manual_seed(0))
    assert loss.shape == (8,) and torch.isfinite(loss).all()
    loss.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    assert any(n.startswith("encoder.layer.1.") for n, _ in model.named_parameters())


def test_frozen_case_has_no_trainable_encoder_and_feature_groups_name_real_tensors(bert, cache_root):
    data = topic_world()
    frozen = build(tokens_for(bert, cache_root, train_layers=0), data, train_layers=0)
    assert not [n for n, p in frozen.named_parameters() if n.startswith("encoder") and p.requires_grad]
    model = build(tokens_for(bert, cache_root), data)
    names = dict(model.named_parameters()) | dict(model.named_buffers())
    groups = model.feature_tensors()
    assert groups["history"] == [] and all(n in names for g in groups.values() for n in g)
    assert any(n.startswith("encoder.layer.1.") for n in groups["text"])


def test_checkpoint_holds_weights_not_token_states_and_reloads_the_same_model(bert, cache_root, tmp_path):
    data = topic_world()
    model = build(tokens_for(bert, cache_root), data)
    model.name = "finetune"
    with torch.no_grad():
        model.encoder.layer["1"].output.dense.weight.mul_(1.5)     # a trained layer differs from the pretrained
    assert not any(k.startswith("token_") for k in model.state_dict())
    loaded = load_model(save_model(tmp_path, model))
    assert torch.allclose(loaded.score(torch.arange(N_USERS)), model.score(torch.arange(N_USERS)), atol=1e-6)


def test_optimizer_groups_per_block_with_decay_and_warmup(bert, cache_root):
    data = topic_world()
    model = build(tokens_for(bert, cache_root, train_layers=99), data, train_layers=99, encoder_lr=1e-4,
                  layer_decay=0.5, warmup_steps=4)
    optimizer = make_optimizer(model, TrainConfig(lr=1e-2))
    by_name = {g["name"]: g for g in optimizer.param_groups}
    assert set(by_name) == {"recommender", "encoder.layer.0", "encoder.layer.1"}
    assert by_name["encoder.layer.1"]["lr"] == pytest.approx(1e-4)
    assert by_name["encoder.layer.0"]["lr"] == pytest.approx(5e-5)          # one block down: decayed once
    assert by_name["recommender"]["lr"] == pytest.approx(1e-2)
    assert group_lr(by_name["encoder.layer.1"], 1e-2, step=0) == pytest.approx(1e-4 / 4)
    assert group_lr(by_name["encoder.layer.1"], 1e-2, step=9) == pytest.approx(1e-4)
    assert group_lr(by_name["recommender"], 5e-3, step=0) == pytest.approx(5e-3)   # cosine etc. scale all alike
    n_params = sum(len(g["params"]) for g in optimizer.param_groups)
    assert n_params == sum(1 for p in model.parameters() if p.requires_grad)


# ----- training --------------------------------------------------------------------------------------------

CFG = TrainConfig(epochs=6, batch_size=16, lr=1e-2, engine="local", patience=0, log_every=2, probe_every=2)


def test_fit_learns_moves_only_the_trained_layers_and_measures_the_encoder(bert, cache_root):
    data = topic_world()
    tokens = tokens_for(bert, cache_root)
    model = build(tokens, data, encoder_lr=1e-3)
    model.name = "finetune"
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = fit(model, data, CFG)
    losses = [r["value"] for r in result.telemetry.curves if r["name"] == "train/epoch_loss"]
    assert losses[-1] < 0.8 * losses[0]
    assert result.state.best_metric > 0.3            # 10 same-topic items out of 30: random is ~0.15
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("encoder.layer.1.") for n in moved)
    curves = {}
    for row in result.telemetry.curves:
        curves.setdefault(row["name"], []).append(row["value"])
    assert len(curves["text/drift_cosine"]) == CFG.epochs and curves["text/drift_cosine"][-1] < 1.0
    assert 0.0 < curves["text/cka/encoder.layer.1"][-1] <= 1.0
    assert 0.0 <= curves["text/score_share"][-1] <= 1.0
    layers = {r["layer"] for r in result.telemetry.grad_stats}
    assert any(layer.startswith("encoder.layer.1.") for layer in layers)


def test_frozen_encoder_stays_pretrained_through_training(bert, cache_root):
    data = topic_world()
    model = build(tokens_for(bert, cache_root, train_layers=0), data, train_layers=0)
    model.name = "finetune"
    result = fit(model, data, replace(CFG, epochs=2))
    drift = [r["value"] for r in result.telemetry.curves if r["name"] == "text/drift_cosine"]
    assert drift and all(d == pytest.approx(1.0) for d in drift)


def test_every_value_of_the_default_search_space_trains_from_one_token_cache(bert, cache_root):
    """A Tune trial of finetune (the function trials run) with each searched value alone."""
    from rayjobs._common import compose
    from recsys.tune.space import for_model, space_from_mapping
    from recsys.tune.trial import TrialContext, run_trial

    space = for_model(space_from_mapping(compose([]).tune.space), "finetune")
    finetune = {path: param for path, param in space.items() if path.startswith("model.finetune.")}
    assert {"model.finetune.train_layers", "model.finetune.encoder_lr", "model.finetune.max_tokens"} <= set(finetune)
    base = compose(["model.finetune.dim=8", "model.finetune.width=16", "model.finetune.negatives=6",
                    "train.batch_size=32", "train.engine=local"])
    tokens = tokens_for(bert, cache_root, max_tokens=32)
    cfg = replace(base, model=replace(base.model, finetune=replace(base.model.finetune, token_cache=tokens.directory)))
    context = TrialContext(cfg, "finetune", topic_world(), {None: None}, epochs=1)
    for path, param in sorted(finetune.items()):
        values = list(param.values) if param.type == "choice" else [param.low, param.high]
        for value in values:
            reports = []
            state = run_trial({path: value}, context, reports.append)
            assert state.status == "completed" and np.isfinite(reports[-1]["val_ndcg"]), (path, value)


@pytest.mark.ray
def test_two_ray_train_workers_match_one_process(tmp_path):
    """DDP over two Ray Train workers (each takes half of every batch, gradients all-reduced) gives one
    process's losses, validation curve and weights, to 1e-4.

    In general the two differ by design: each worker's softmax runs over its half's targets plus its own
    sampled negatives, and BERT's dropout draws per worker. Here 1,024 negatives over 30 items make every
    step's candidate set the whole catalogue (a full softmax) and the BERT has no dropout, so both runs
    compute the same gradient and any gap is DDP's (or the loop's sharding) fault.
    """
    from recsys.train._ray import train_with_ray
    from recsys.train.stage import new_model, train_local

    data = topic_world()
    tokens = tokens_for(save_tiny_bert(tmp_path / "bert", dropout=0.0), tmp_path / "tokens", train_layers=99)
    config = small_config(tokens, encoder_lr=1e-3, negatives=1024)    # P(an item missed) ~ 1e-14
    cfg = replace(CFG, epochs=2, engine="ray", num_workers=2, cpus_per_worker=0.5)
    distributed = train_with_ray("finetune", config, data, None, cfg, tmp_path / "ray")
    single = train_local("finetune", config, data, None, replace(cfg, engine="local"), tmp_path / "local")

    def losses(trained):
        return [r["value"] for r in trained.telemetry.curves if r["name"] == "train/loss"]

    assert len(losses(single)) >= 6 and losses(distributed) == pytest.approx(losses(single), rel=1e-4, abs=1e-5)
    assert distributed.state.val_history == pytest.approx(single.state.val_history, abs=1e-4)
    a = torch.load(distributed.path, weights_only=True)["state_dict"]
    b = torch.load(single.path, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and max(float((a[k].float() - b[k].float()).abs().max()) for k in a) < 1e-4
    initial = new_model("finetune", config, data, None, cfg.seed).state_dict()
    moved = [k for k in a if k.startswith("encoder.layer.") and not torch.allclose(a[k], initial[k], atol=1e-4)]
    assert {k.split(".")[2] for k in moved} == {"0", "1"}              # both blocks trained, under DDP too


def test_text_field_importance_leaves_token_states_alone_instead_of_failing(bert, cache_root):
    """Vectors of the text without a field cannot stand in for token states: finetune gets no text-field rows."""
    from recsys.diagnose.importance import EvalData, text_field_rows

    data = topic_world()
    model = build(tokens_for(bert, cache_root), data).eval()
    held = data.val
    vectors = np.zeros((N_ITEMS, 32), np.float32)                    # what the embed stage gives per field
    assert text_field_rows(model, EvalData(held, data.seen(), "ndcg", 5), {"genres": vectors}) == []
