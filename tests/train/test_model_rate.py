"""train.lr left null: every model trains at its own rate (ModelSpec.lr), a set train.lr at that rate."""

from __future__ import annotations

import pytest

from recsys.models.registry import ModelSettings
from recsys.train.config import TrainConfig
from recsys.train.data import TrainingData
from recsys.train.stage import train_local


@pytest.mark.parametrize("name, lr, expected", [("lightgcn", None, 1e-2), ("mf", None, 3e-3), ("mf", 0.05, 0.05)])
def test_the_learning_rate_points_of_the_curve_are_the_models_own_rate(tmp_path, name, lr, expected):
    data = TrainingData.from_arrays([0, 0, 1, 1, 2], [0, 1, 2, 3, 1], n_users=3, n_items=4, val_users=[2],
                                    val_items=[3])
    cfg = TrainConfig(lr=lr, epochs=1, batch_size=2, engine="local", log_every=1)
    trained = train_local(name, getattr(ModelSettings(), name), data, None, cfg, tmp_path)
    rates = [r["value"] for r in trained.telemetry.curves if r["name"] == "lr"]
    assert rates and rates == pytest.approx([expected] * len(rates))
