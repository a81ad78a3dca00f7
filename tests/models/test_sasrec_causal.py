"""SASRec: no future item leaks through the causal mask; every position is a target; published-strength defaults."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.models.base import PAD, Batch, ModelInputs
from recsys.models.sasrec import SASRec, SASRecConfig
from recsys.train.losses import softmax_loss

N_ITEMS, TEXT_DIM, MAX_LEN = 12, 6, 8


def inputs() -> ModelInputs:
    text = torch.nn.functional.normalize(torch.randn(N_ITEMS, TEXT_DIM, generator=torch.Generator().manual_seed(0)),
                                         dim=1)
    items = torch.arange(N_ITEMS) % 10
    return ModelInputs(n_users=2, n_items=N_ITEMS, n_warm_items=10, history_indptr=torch.tensor([0, 7, 12]),
                       history_items=items, item_counts=torch.ones(N_ITEMS), item_text=text)


MODELS = {}


def model(use_text: bool, use_item_id: bool) -> SASRec:
    key = (use_text, use_item_id)
    if key not in MODELS:
        torch.manual_seed(0)
        MODELS[key] = SASRec(SASRecConfig(dim=16, heads=2, layers=2, max_len=MAX_LEN, dropout=0.3,
                                          use_text=use_text, use_item_id=use_item_id), inputs()).eval()
    return MODELS[key]


@settings(max_examples=60, deadline=None)
@given(data=st.data(), inputs_kind=st.sampled_from([(True, True), (True, False), (False, True)]))
def test_changing_later_items_never_changes_an_earlier_output(data, inputs_kind):
    length = data.draw(st.integers(1, MAX_LEN), label="length")
    items = data.draw(st.lists(st.integers(0, N_ITEMS - 1), min_size=length, max_size=length), label="items")
    t = data.draw(st.integers(0, length - 1), label="t")
    changed = items[:t + 1] + data.draw(st.lists(st.integers(0, N_ITEMS - 1), min_size=length - t - 1,
                                                 max_size=length - t - 1), label="later")
    pad = [PAD] * (MAX_LEN - length)                                    # left-aligned, padded on the right
    net = model(*inputs_kind)
    with torch.no_grad():
        out = net._encode(torch.tensor([items + pad, changed + pad]))      # (2, L, D)
    assert torch.allclose(out[0, :t + 1], out[1, :t + 1], atol=1e-5)


def test_a_change_at_or_before_t_does_change_the_output_at_t():
    """The property above can fail: the encoder reads the past."""
    net = model(True, True)
    with torch.no_grad():
        out = net._encode(torch.tensor([[1, 2, 3, 4], [1, 5, 3, 4]]))
    assert not torch.allclose(out[0, 2], out[1, 2], atol=1e-4)
    assert torch.allclose(out[0, 0], out[1, 0], atol=1e-5)


@pytest.mark.parametrize("use_text, use_item_id", [(True, True), (True, False), (False, True)])
def test_every_position_of_a_window_is_a_target_of_the_full_softmax(use_text, use_item_id):
    net = model(use_text, use_item_id)
    out = net(Batch(torch.tensor([0, 1]), torch.tensor([7, 12])))        # windows ending at each user's last item
    # user 0: 7 items -> 6 next-item targets; user 1: 5 items -> 4 targets
    assert out.targets.tolist() == [1, 2, 3, 4, 5, 6] + [8, 9, 0, 1]
    losses = softmax_loss(out)                                           # (M,) one full cross-entropy per position
    assert losses.shape == (10,) and torch.isfinite(losses).all()
    assert torch.isfinite(net.score(torch.tensor([0, 1]))).all()


def test_defaults_are_the_published_setting():
    """Kang & McAuley 2018 / Klenitskiy & Vasilev 2023: 2 blocks, 2 heads, 64 dims, length 50-200, dropout."""
    config = SASRecConfig()
    assert (config.layers, config.heads, config.dim) == (2, 2, 64)
    assert 50 <= config.max_len <= 200 and 0.2 <= config.dropout <= 0.5


@pytest.mark.parametrize("inputs_kind", [(True, True), (False, True)])
def test_cutting_the_right_padding_changes_no_output(inputs_kind):
    """Windows are cut to the longest real row: the outputs equal those of the full max_len windows."""
    from recsys.models.base import gather_windows
    from recsys.models.sasrec import trim_padding

    net = model(*inputs_kind)
    users = torch.tensor([0, 1, 1])                                         # histories of 7 and 5 items
    full = gather_windows(net.history_indptr, net.history_items, users, net.history_indptr[users + 1], MAX_LEN)
    cut = trim_padding(full, 1)                                             # (3, 8) -> (3, 7)
    assert cut.shape == (3, 7)
    with torch.no_grad():
        whole, short = net._encode(full), net._encode(cut)                  # (3, 8, D), (3, 5, D)
        real = cut != PAD
        assert torch.allclose(whole[:, :7][real], short[real], atol=1e-6)
        assert torch.allclose(net.user_vectors(users, None), whole[torch.arange(3), real.sum(1) - 1], atol=1e-6)
