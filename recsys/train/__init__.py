"""Training loop, losses and instrumentation (pure core; Ray Train wrapper in ``_ray.py``)."""
