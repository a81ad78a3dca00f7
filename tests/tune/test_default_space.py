"""The default search space (configs/tune/default.yaml): what it covers, and that every value it can draw trains.

Pure: no Ray. Each value of each searched parameter is set alone on the baseline config and
trained for one epoch on a tiny world through the same function a Tune trial runs.
"""

from __future__ import annotations

import numpy as np
import pytest

from rayjobs._common import compose
from recsys.config import RecsysConfig
from recsys.train.data import TrainingData
from recsys.tune.settings import get_setting
from recsys.tune.space import for_model, space_from_mapping
from recsys.tune.trial import TrialContext, run_trial

MODELS = ("mf", "content", "two_tower", "sasrec", "lightgcn", "textgraph")


def _default_space():
    return space_from_mapping(compose([]).tune.space)


def _values(param) -> list:
    if param.type == "choice":
        return list(param.values)
    if param.type in ("loguniform", "uniform", "int"):
        low, high = (int(param.low), int(param.high)) if param.type == "int" else (param.low, param.high)
        return [low, high]
    return [param.value]


def test_the_default_space_covers_the_searched_families():
    space = _default_space()
    expected = {
        "learning rate": "train.lr", "batch size": "train.batch_size", "weight decay": "train.weight_decay",
        "gradient clipping": "train.grad_clip", "loss": "train.loss", "negatives": "train.negatives",
        "sampler": "train.negative_sampling", "dropout": "model.two_tower.dropout",
        "temperature": "model.two_tower.temperature", "tower depth": "model.two_tower.depth",
        "tower width": "model.two_tower.width", "normalisation": "model.two_tower.norm",
        "embedding dimension": "model.two_tower.dim", "pooling": "model.two_tower.pooling",
        "ID input": "model.two_tower.use_item_id", "sasrec layers": "model.sasrec.layers",
        "sasrec heads": "model.sasrec.heads", "sasrec max length": "model.sasrec.max_len",
    }
    missing = {family: path for family, path in expected.items() if path not in space or not space[path].searched}
    assert not missing, f"the default space does not search {missing}"


def test_the_baseline_lies_inside_the_default_space():
    """The search's start point is the baseline's own settings, unmoved."""
    from recsys.models.registry import BUILTINS
    from recsys.train.config import for_model

    cfg = compose([])
    for path, param in _default_space().items():
        if path == "train.lr":                 # null: each model's own rate, every one inside the range
            for spec in BUILTINS:
                lr = for_model(cfg.train, spec.name).lr
                assert param.contains(lr), f"{spec.name}: train.lr {lr} outside {param.describe()}"
            continue
        assert param.contains(get_setting(cfg, path)), f"{path}: baseline {get_setting(cfg, path)!r} " \
                                                        f"outside {param.describe()}"


def _tiny_context(model: str) -> TrialContext:
    rng = np.random.default_rng(0)
    n_users, n_items = 12, 20
    users = np.repeat(np.arange(n_users), 5)
    items = rng.integers(0, n_items, size=users.size)
    data = TrainingData.from_arrays(users, items, np.arange(users.size), n_users=n_users, n_items=n_items,
                                    val_users=[0, 1, 2], val_items=[3, 4, 5])
    vectors = rng.normal(size=(n_items, 8)).astype(np.float32)
    return TrialContext(RecsysConfig(), model, data, {None: vectors}, epochs=1)


CASES = [(model, path, value) for model in MODELS
         for path, param in sorted(for_model(_default_space(), model).items()) if param.searched
         for value in _values(param)]


@pytest.mark.parametrize("model, path, value", CASES, ids=[f"{m}-{p}={v}" for m, p, v in CASES])
def test_every_value_the_default_space_can_draw_trains(model, path, value):
    reports = []
    state = run_trial({path: value}, _tiny_context(model), reports.append)
    assert state.status == "completed" and reports and np.isfinite(reports[-1]["val_ndcg"])
