"""Item text → vectors with a BERT-family encoder (pure core; Ray Data wrapper in ``_ray.py``)."""
