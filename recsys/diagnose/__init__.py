"""Diagnosis rules over curves, gradients, embeddings, metrics and feature importance.

- :mod:`recsys.diagnose.engine`: :func:`~recsys.diagnose.engine.diagnose` runs every rule of ``RULES``.
- :mod:`recsys.diagnose.inputs`: :class:`~recsys.diagnose.inputs.DiagnosisInputs`, the tables rules read.
- :mod:`recsys.diagnose.finding`: :class:`~recsys.diagnose.finding.Finding`, codes, ``to_rows``.
- :mod:`recsys.diagnose.remedies`: search-space edits and their operations.
- :mod:`recsys.diagnose.summary`: the per-model text summary.
- Rule families: ``gradients``, ``curves``, ``fitting``, ``embeddings``, ``outcomes``, ``features``.
- :mod:`recsys.diagnose.stage`: the pipeline stage (and ``diagnose_run`` for a finished run).
- Measurements the stage feeds the rules: :mod:`recsys.diagnose.importance` (ablation, permutation),
  :mod:`recsys.diagnose.attribution` (gradient x input), :mod:`recsys.diagnose.text_fields`
  (text without one template field), :mod:`recsys.diagnose.model_health` (trained embeddings).

Rules and thresholds are documented in ``docs/diagnosis.md``.
"""
