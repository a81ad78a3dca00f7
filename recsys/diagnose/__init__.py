"""Diagnosis rules over curves, gradients, embeddings, metrics and feature importance.

- :mod:`recsys.diagnose.engine`: :func:`~recsys.diagnose.engine.diagnose` runs every rule of ``RULES``.
- :mod:`recsys.diagnose.inputs`: :class:`~recsys.diagnose.inputs.DiagnosisInputs`, the tables rules read.
- :mod:`recsys.diagnose.finding`: :class:`~recsys.diagnose.finding.Finding`, codes, ``to_rows``.
- :mod:`recsys.diagnose.remedies`: search-space edits and their operations.
- :mod:`recsys.diagnose.summary`: the per-model text summary.
- Rule families: ``gradients``, ``curves``, ``fitting``, ``embeddings``, ``outcomes``, ``features``.

Rules and thresholds are documented in ``docs/diagnosis.md``.
"""
