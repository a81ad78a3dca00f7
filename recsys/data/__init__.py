"""Data layer: load → validate → filter → split → map ids (pure), with a Ray Data path in ``_ray.py``."""
