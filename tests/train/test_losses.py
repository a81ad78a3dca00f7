"""Losses: hand-computed cases, sampled softmax against the full softmax, logQ correction."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.errors import ConfigError
from recsys.models.base import Output
from recsys.train.losses import Loss, bpr_loss, sampled_softmax_loss, softmax_loss


def hand_output() -> Output:
    # one query, three items: logits [2, 0, 1], target item 2
    return Output(torch.tensor([[1.0, 0.0]]), torch.tensor([2]), torch.tensor([[2.0, 0.0], [0.0, 0.0], [1.0, 5.0]]))


def test_softmax_by_hand():
    expected = -math.log(math.exp(1) / (math.exp(2) + math.exp(0) + math.exp(1)))
    assert softmax_loss(hand_output()).item() == pytest.approx(expected, rel=1e-6)


def test_sampled_softmax_by_hand_with_logq():
    out = hand_output()
    log_q = torch.log(torch.tensor([0.5, 0.25, 0.25]))
    # target 2: 1 - log .25; negative 0: 2 - log .5; negative 2 equals the target: removed
    loss = sampled_softmax_loss(out, torch.tensor([0, 2]), log_q).item()
    pos, neg = 1 - math.log(0.25), 2 - math.log(0.5)
    assert loss == pytest.approx(-(pos - math.log(math.exp(pos) + math.exp(neg))), rel=1e-6)


def test_bpr_by_hand():
    # s_target = 1, s_negative(item 0) = 2
    assert bpr_loss(hand_output(), torch.tensor([0])).item() == pytest.approx(math.log1p(math.exp(1.0)), rel=1e-6)


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 5), n=st.integers(2, 9), d=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_sampled_softmax_over_every_item_is_the_full_softmax(m, n, d, seed):
    g = torch.Generator().manual_seed(seed)
    out = Output(torch.randn(m, d, generator=g), torch.randint(0, n, (m,), generator=g), torch.randn(n, d, generator=g))
    uniform = torch.full((n,), -math.log(n))
    full = softmax_loss(out)
    assert torch.allclose(sampled_softmax_loss(out, torch.arange(n), uniform), full, atol=1e-5)
    assert (full >= 0).all()


def test_logq_correction_recovers_the_full_softmax_from_popularity_samples():
    """With many negatives drawn by popularity, the corrected loss is the full softmax plus terms that do not
    depend on the model (log S + log Q(target)), so its gradient is the full softmax's; uncorrected it is not."""
    torch.manual_seed(0)
    n = 50
    counts = torch.arange(1, n + 1).float() ** 2
    out = Output(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]), torch.randn(n, 3))
    loss = Loss("sampled_softmax", counts, negatives=20_000, sampling="popularity")
    g = torch.Generator().manual_seed(1)
    negatives = loss.sample(20_000, g)
    corrected = sampled_softmax_loss(out, negatives, loss.log_q)
    plain = sampled_softmax_loss(out, negatives, torch.zeros(n))
    full = softmax_loss(out)
    shift = math.log(20_000) + loss.log_q[out.targets]
    assert torch.allclose(corrected - shift, full, atol=0.05)
    assert not torch.allclose(plain - shift, full, atol=0.05)


def test_loss_configuration_errors_name_the_setting():
    with pytest.raises(ConfigError, match="train.loss"):
        Loss("hinge", torch.ones(3))
    with pytest.raises(ConfigError, match="train.negative_sampling"):
        Loss("bpr", torch.ones(3), sampling="zipf")
    with pytest.raises(ConfigError, match="train.negative_sampling"):
        Loss("bpr", torch.zeros(3), sampling="popularity")


def test_popularity_sampling_follows_training_counts():
    loss = Loss("bpr", torch.tensor([0.0, 1.0, 3.0]), sampling="popularity")
    draws = loss.sample(40_000, torch.Generator().manual_seed(0))
    share = torch.bincount(draws, minlength=3).float() / 40_000
    assert share[0] == 0 and share[2].item() == pytest.approx(0.75, abs=0.01)
