"""recsys: understand and diagnose recommenders built on a pretrained language model."""

__version__ = "0.1.0"
