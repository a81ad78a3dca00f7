"""recsys.testing's contract tests, run on every built-in model and on the example plugin (examples/neumf)."""

from __future__ import annotations

import pytest

from recsys.models.registry import SPECS
from recsys.testing import ModelContract


class TestPop(ModelContract):
    model_name = "pop"


class TestMF(ModelContract):
    model_name = "mf"


class TestContent(ModelContract):
    model_name = "content"
    text_dim = 8


class TestTwoTower(ModelContract):
    model_name = "two_tower"
    text_dim = 8


class TestSASRec(ModelContract):
    model_name = "sasrec"
    text_dim = 8


class TestLightGCN(ModelContract):
    model_name = "lightgcn"


@pytest.mark.skipif("neumf" not in SPECS, reason="the example package examples/neumf is not installed")
class TestExampleNeuMF(ModelContract):
    model_name = "neumf"


def test_the_example_plugin_is_installed_in_the_test_environment():
    """`make setup` installs examples/neumf; its entry point registers it in every process."""
    assert "neumf" in SPECS and SPECS["neumf"].target == "recsys_neumf.model:NeuMF"


class TestTextGraph(ModelContract):
    model_name = "textgraph"
    text_dim = 8
