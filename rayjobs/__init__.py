"""Hydra entry points, one per stage plus the whole pipeline: ``python -m rayjobs.<stage>``."""
