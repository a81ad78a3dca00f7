"""Recommender models, one file each, and the explicit registry."""
