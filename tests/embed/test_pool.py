"""Actor pool plans: sized from resources, always leaving CPU for Ray Data's tasks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys.embed.config import EncoderConfig
from recsys.embed.pool import plan_pool
from recsys.errors import ConfigError


def test_two_cpu_machine_gets_one_actor_that_leaves_a_cpu_free():
    plan = plan_pool({"CPU": 2.0}, EncoderConfig())
    assert (plan.actors, plan.threads, plan.device) == (1, 2, "cpu")
    assert plan.actors * plan.num_cpus <= 1.0


def test_gpus_get_one_actor_each():
    plan = plan_pool({"CPU": 8.0, "GPU": 4.0}, EncoderConfig())
    assert (plan.actors, plan.num_gpus, plan.device) == (4, 1.0, "cuda")
    assert plan_pool({"CPU": 8.0, "GPU": 4.0}, EncoderConfig(device="cpu")).device == "cpu"
    assert plan_pool({"CPU": 8.0, "GPU": 4.0}, EncoderConfig(actors=2)).actors == 2


def test_cuda_without_gpus_and_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="encoder.device"):
        plan_pool({"CPU": 4.0}, EncoderConfig(device="cuda"))
    with pytest.raises(ConfigError, match="encoder.actors"):
        plan_pool({"CPU": 4.0}, EncoderConfig(actors=0))
    with pytest.raises(ConfigError, match="encoder.threads_per_actor"):
        plan_pool({"CPU": 4.0}, EncoderConfig(threads_per_actor=0))


@given(cpus=st.floats(0.0, 256.0), gpus=st.integers(0, 8), actors=st.one_of(st.none(), st.integers(1, 64)),
       threads=st.one_of(st.none(), st.integers(1, 16)))
def test_pool_never_reserves_every_cpu(cpus, gpus, actors, threads):
    plan = plan_pool({"CPU": cpus, "GPU": float(gpus)}, EncoderConfig(actors=actors, threads_per_actor=threads))
    total = max(cpus, 1.0)
    assert plan.actors >= 1 and plan.threads >= 1 and plan.num_cpus > 0
    assert plan.actors * plan.num_cpus <= total - min(1.0, 0.25 * total) + 1e-9
    if gpus:
        assert plan.actors <= gpus and plan.num_gpus == 1.0
