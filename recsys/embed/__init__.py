"""Item text → vectors with a BERT-family encoder, cached by fingerprint.

Pure core: ``templates`` (row → text), ``source`` (where the model comes from),
``encoder`` (``TextEncoder``), ``cache`` (vectors by text hash), ``health``
(embedding statistics), ``pool`` (actor pool plan), ``progress`` (log lines),
``catalogue`` (a prepared dataset's items → one vector file). Ray Data wrapper in
``_ray.py``; the pipeline stage in ``stage.py``.
"""
