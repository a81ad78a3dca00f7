"""The contract tests recsys ships, run on this package's model: copy this file into your own package."""

from recsys.testing import ModelContract


class TestNeuMF(ModelContract):
    model_name = "neumf"          # the entry-point name in pyproject.toml
