"""What the tune stage leaves in the report besides ``trials``, and the before/after summary it prints."""

from __future__ import annotations

import polars as pl

from recsys.evaluate.segments import ALL


def _results(state, results) -> dict:
    """``{reported model name: evaluation rows per split}``: the baseline first, then undirected, then directed."""
    from recsys.tune.stage import variant

    out = {state.model: state.evaluation.rows[state.model]}
    for mode in ("undirected", "directed"):
        best = results[mode].best if mode in results else None
        if best is not None:
            out[variant(state.model, mode)] = best.retrained.payload.rows
    return out


def write_results(state, results) -> list[dict]:
    """Write metrics, user_metrics, comparisons and the rounds' findings; return the comparison rows."""
    from recsys.evaluate.stage import comparison_rows, metric_rows, user_metric_frame

    ev, ecfg, writer, dataset = state.evaluation, state.cfg.eval, state.run.writer, state.dataset
    by_model = _results(state, results)
    for name, rows in list(by_model.items())[1:]:
        for split, result in rows.items():
            summary = metric_rows(result, ev.context, split, ecfg, ev.segments[split], ev.item_groups)
            writer.write("metrics", [dict(row, model=name, dataset=dataset) for row in summary])
            writer.write("user_metrics", user_metric_frame(result, ev.context).with_columns(
                pl.lit(dataset).alias("dataset"), pl.lit(name).alias("model"), pl.lit(split).alias("split"),
                pl.lit(ecfg.protocol).alias("protocol")))
    comparisons = []
    if len(by_model) > 1:
        for split in ecfg.splits:
            found = comparison_rows({name: rows[split] for name, rows in by_model.items()}, split, ecfg,
                                    ev.segments[split])
            comparisons += [dict(row, dataset=dataset) for row in found]
        writer.write("comparisons", comparisons)
    if "directed" in results:
        writer.write("findings", [row for rnd in results["directed"].rounds if rnd.retrained is not None
                                  for row in rnd.retrained.payload.findings_rows])
    return comparisons


def _value(rows, column: str) -> str:
    from recsys.tune.stage import mean_on_test_split

    mean = mean_on_test_split(rows, column)
    return "-" if mean is None else f"{mean:.4f}"


def verdict(name: str, tuned: float, baseline: float | None) -> str:
    """Whether a search's retrained result beat the baseline on validation (the search's own objective).

    >>> verdict("mf:directed", 0.21, 0.20)
    'mf:directed: validation NDCG 0.2100 vs the baseline 0.2000: better'
    >>> verdict("mf:undirected", 0.19, 0.20).endswith("not better; keep the baseline's settings")
    True
    """
    if baseline is None:
        return f"{name}: validation NDCG {tuned:.4f} (the baseline has none to compare with)"
    outcome = "better" if tuned > baseline else "not better; keep the baseline's settings"
    return f"{name}: validation NDCG {tuned:.4f} vs the baseline {baseline:.4f}: {outcome}"


def verdicts(state, results) -> list[str]:
    """One :func:`verdict` line per search that retrained a result."""
    from recsys.tune.stage import variant

    record = state.run.models.get(state.model)
    baseline = None if record is None else record.best_val
    return [f"  {verdict(variant(state.model, mode), result.best.retrained.val_ndcg, baseline)}"
            for mode, result in results.items() if result.best is not None]


def brief_text(state, results, comparisons: list[dict]) -> str:
    """The console's few lines of a search: its trials, the verdict of each search, the paired test of test NDCG
    (:func:`summary_text`, the whole account, goes to the run's log file).

    >>> from types import SimpleNamespace as NS
    >>> trial = lambda status: NS(status=status)
    >>> result = NS(rounds=[NS(trials=[trial("completed"), trial("stopped"), trial("error")])], best=None)
    >>> state = NS(model="mf", dataset="synthetic", cfg=NS(eval=NS(k=[10])))
    >>> test = {"split": "test", "segment": "all", "metric": "ndcg", "k": 10, "candidate": "mf:directed",
    ...         "baseline": "mf", "delta": 0.01, "p_adjusted": 0.04}
    >>> print(brief_text(state, {"directed": result}, [test]))
    tuning mf on synthetic: directed 1 round(s), 3 trials (1 stopped early by ASHA, 1 failed)
      mf:directed vs mf: test ndcg@10 +0.0100 (p adjusted 0.04)
    """
    ks = list(state.cfg.eval.k)
    k = 10 if 10 in ks else max(ks)
    counts = []
    for mode, result in results.items():
        trials = [t for rnd in result.rounds for t in rnd.trials]
        failed = sum(t.status in ("error", "diverged") for t in trials)
        stopped = sum(t.status == "stopped" for t in trials)
        counts.append(f"{mode} {len(result.rounds)} round(s), {len(trials)} trials "
                      f"({stopped} stopped early by ASHA, {failed} failed)")
    lines = [f"tuning {state.model} on {state.dataset}: {'; '.join(counts)}"]
    if any(result.best is not None for result in results.values()):
        lines += verdicts(state, results)
    for row in comparisons:
        if row["split"] == "test" and row["segment"] == ALL and row["metric"] == "ndcg" and row["k"] == k:
            p = row.get("p_adjusted")
            lines.append(f"  {row['candidate']} vs {row['baseline']}: test ndcg@{k} {row['delta']:+.4f} "
                         f"(p adjusted {'-' if p is None else f'{p:.3g}'})")
    return "\n".join(lines)


def summary_text(state, results, comparisons: list[dict]) -> str:
    """Before/after: test NDCG and recall of the baseline and each search's result, then the paired tests."""
    ks = list(state.cfg.eval.k)
    k = 10 if 10 in ks else max(ks)
    by_model = _results(state, results)
    lines = [f"tuning {state.model} on {state.dataset}:"]
    for mode, result in results.items():
        trials = [t for rnd in result.rounds for t in rnd.trials]
        failed = sum(t.status in ("error", "diverged") for t in trials)
        stopped = sum(t.status == "stopped" for t in trials)
        lines.append(f"  {mode}: {len(result.rounds)} round(s), {len(trials)} trials "
                     f"({stopped} stopped early by ASHA, {failed} failed)")
        for rnd in result.rounds:
            applied = [f"{n.code}: {n.edit}" for n in rnd.notes if n.status == "applied"]
            if mode == "directed":
                lines.append(f"    round {rnd.index} remedies: {'; '.join(applied) if applied else 'none'}")
            if rnd.retrained is not None:
                found = [f"{f.code} ({f.severity})" for f in rnd.retrained.findings if f.severity != "info"]
                after = f"; its findings: {', '.join(found) or 'no warning or critical'}" if mode == "directed" else ""
                lines.append(f"    round {rnd.index} best trial {rnd.selected.trial_id} retrained: val NDCG "
                             f"{rnd.retrained.val_ndcg:.4f}{after}")
    lines += verdicts(state, results)
    header = ["model", f"test NDCG@{k}", f"test Recall@{k}"]
    table = [header] + [[name, _value(rows, f"ndcg@{k}"), _value(rows, f"recall@{k}")]
                        for name, rows in by_model.items()]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in table]
    for row in comparisons:
        if row["split"] == "test" and row["segment"] == ALL and row["metric"] in ("ndcg", "recall") and row["k"] == k:
            p = row.get("p_adjusted")
            lines.append(f"  {row['candidate']} vs {row['baseline']}: {row['metric']}@{k} {row['delta']:+.4f} "
                         f"(p adjusted {'-' if p is None else f'{p:.3g}'})")
    return "\n".join(lines)
