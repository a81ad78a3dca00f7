"""Hand-built report tables for the diagnosis tests: a healthy run, and pieces to plant faults in."""

from __future__ import annotations

import numpy as np
import polars as pl

from recsys.diagnose.inputs import DiagnosisInputs

SPE = 10          # steps per epoch


def step_rows(model: str, values, name: str = "train/loss", spe: int = SPE) -> list[dict]:
    return [{"model": model, "step": s, "epoch": s // spe, "name": name, "value": float(v)}
            for s, v in enumerate(values)]


def epoch_rows(model: str, values, name: str, spe: int = SPE) -> list[dict]:
    return [{"model": model, "step": (e + 1) * spe - 1, "epoch": e, "name": name, "value": float(v)}
            for e, v in enumerate(values)]


def curves(model: str, step_loss, val=None, spe: int = SPE, epoch_loss: bool = True) -> pl.DataFrame:
    """Step-level loss, its epoch means as train/epoch_loss, val/ndcg@10 per epoch and a constant lr."""
    step_loss = np.asarray(step_loss, dtype=np.float64)
    rows = step_rows(model, step_loss, spe=spe)
    if epoch_loss:
        n_epochs = len(step_loss) // spe
        means = [step_loss[e * spe:(e + 1) * spe].mean() for e in range(n_epochs)]
        rows += epoch_rows(model, means, "train/epoch_loss", spe)
    if val is not None:
        rows += epoch_rows(model, val, "val/ndcg@10", spe)
    rows += step_rows(model, np.full(len(step_loss), 1e-3), name="lr", spe=spe)
    return pl.DataFrame(rows)


def healthy_step_loss(n_epochs: int = 20, seed: int = 0, start: float = 7.0, end: float = 5.0,
                      noise: float = 0.02) -> np.ndarray:
    """Smoothly decreasing loss with multiplicative noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_epochs * SPE)
    clean = end + (start - end) * np.exp(-t / (n_epochs * SPE / 4))
    return clean * (1 + noise * rng.standard_normal(len(t)))


def healthy_val(n_epochs: int = 20, seed: int = 0, noise: float = 0.003) -> np.ndarray:
    """Validation NDCG rising, then flat."""
    rng = np.random.default_rng(seed + 1)
    e = np.arange(n_epochs)
    return 0.05 + 0.15 * (1 - np.exp(-e / 2.0)) + noise * rng.standard_normal(n_epochs)


def grad_rows(model: str, layer: str, grad_norms, update_ratios=None, weight_norm: float = 10.0,
              rows_touched=None, start_step: int = 0) -> list[dict]:
    n = len(grad_norms)
    update_ratios = np.full(n, 1e-3) if update_ratios is None else np.asarray(update_ratios, dtype=np.float64)
    rows = []
    for i in range(n):
        rows.append({"model": model, "step": start_step + i, "epoch": i // SPE, "layer": layer,
                     "grad_norm": float(grad_norms[i]), "weight_norm": weight_norm,
                     "update_ratio": float(update_ratios[i]), "nan_count": 0, "inf_count": 0,
                     "rows_touched_share": None if rows_touched is None else float(rows_touched[i])})
    return rows


HEALTHY_LAYERS = {"user_embedding.weight": 2.0, "item_tower.0.weight": 0.5, "item_tower.1.weight": 0.1,
                  "item_tower.4.weight": 1.0, "item_tower.4.bias": 0.3}


def healthy_grads(model: str = "two_tower", n_steps: int = 100, seed: int = 0) -> pl.DataFrame:
    """Stable gradient norms (lognormal noise), update ratios about 1e-3, every embedding row touched."""
    rng = np.random.default_rng(seed)
    rows = []
    for layer, scale in HEALTHY_LAYERS.items():
        norms = scale * np.exp(0.2 * rng.standard_normal(n_steps))
        ratios = 1e-3 * np.exp(0.3 * rng.standard_normal(n_steps))
        touched = np.minimum(1.0, np.linspace(0.3, 1.5, n_steps)) if "embedding" in layer else None
        rows += grad_rows(model, layer, norms, ratios, rows_touched=touched)
    return pl.DataFrame(rows)


def health_row(model: str, embedding: str, n_rows: int = 500, dim: int = 64, effective_rank: float = 40.0,
               mean_cosine: float = 0.05, isotropy: float = 0.4, dead_rows: int = 0) -> dict:
    return {"model": model, "embedding": embedding, "n_rows": n_rows, "dim": dim, "effective_rank": effective_rank,
            "norm_mean": 1.0, "norm_std": 0.1, "norm_min": 0.5, "norm_max": 1.5, "isotropy": isotropy,
            "mean_cosine": mean_cosine, "dead_rows": dead_rows, "details": "{}"}


def healthy_health() -> pl.DataFrame:
    return pl.DataFrame([health_row("two_tower", "item_id"),
                         health_row("two_tower", "item_text", dim=384, effective_rank=150.0, mean_cosine=0.2),
                         health_row("mf", "item_id", effective_rank=30.0)])


def item_norms(model: str, norms, popularity, embedding: str = "item_id") -> pl.DataFrame:
    return pl.DataFrame({"model": model, "embedding": embedding, "item_id": [str(i) for i in range(len(norms))],
                         "popularity": np.asarray(popularity, dtype=np.float64),
                         "norm": np.asarray(norms, dtype=np.float64)})


def healthy_item_norms(n: int = 200, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return item_norms("mf", 1 + 0.1 * rng.standard_normal(n), rng.zipf(1.5, n).astype(float))


def metric(model: str, name: str, value: float, k=10, segment: str = "all", split: str = "val",
           ci=None, n_users: int = 200) -> dict:
    low, high = ci if ci is not None else (None, None)
    return {"model": model, "split": split, "segment": segment, "metric": name, "k": k, "value": value,
            "ci_low": low, "ci_high": high, "n_users": n_users}


def healthy_metrics() -> pl.DataFrame:
    rows = []
    for model, ndcg, arp, cov in (("pop", 0.05, 300.0, 0.03), ("mf", 0.12, 150.0, 0.4),
                                  ("two_tower", 0.14, 120.0, 0.5)):
        rows += [metric(model, "ndcg", ndcg, ci=(ndcg - 0.01, ndcg + 0.01)),
                 metric(model, "popularity", arp), metric(model, "test_popularity", 100.0, k=None),
                 metric(model, "coverage", cov),
                 metric(model, "ndcg", ndcg * 0.85, segment="cold_users", ci=(ndcg * 0.75, ndcg * 0.95),
                        n_users=50)]
    return pl.DataFrame(rows)


def comparison(candidate: str, delta: float, p: float, baseline: str = "pop", split: str = "val") -> dict:
    return {"split": split, "segment": "all", "baseline": baseline, "candidate": candidate, "metric": "ndcg",
            "k": 10, "delta": delta, "p_value": p, "p_adjusted": p, "test": "paired_t"}


def healthy_comparisons() -> pl.DataFrame:
    return pl.DataFrame([comparison("mf", 0.07, 1e-6), comparison("two_tower", 0.09, 1e-8)])


def importance(model: str, feature: str, drop: float, base: float = 0.12, group=None, ci=None,
               method: str = "ablation", split: str = "val") -> dict:
    low, high = ci if ci is not None else (drop - 0.005, drop + 0.005)
    return {"model": model, "split": split, "feature": feature, "feature_group": group, "method": method,
            "metric": "ndcg", "k": 10, "baseline_value": base, "value": base - drop, "drop": drop,
            "ci_low": low, "ci_high": high, "n_repeats": 5}


def healthy_importance() -> pl.DataFrame:
    return pl.DataFrame([importance("two_tower", "text", 0.03), importance("two_tower", "item_id", 0.02),
                         importance("two_tower", "title", 0.01, group="text_field"),
                         importance("two_tower", "description", 0.002, group="text_field", ci=(-0.001, 0.005))])


def healthy_inputs() -> DiagnosisInputs:
    curve_frames = [curves("mf", healthy_step_loss(seed=1), healthy_val(seed=1)),
                    curves("two_tower", healthy_step_loss(seed=2, start=6.0, end=4.5), healthy_val(seed=2))]
    return DiagnosisInputs(curves=pl.concat(curve_frames), grad_stats=healthy_grads(),
                           embedding_health=healthy_health(), metrics=healthy_metrics(),
                           comparisons=healthy_comparisons(), feature_importance=healthy_importance(),
                           item_norms=healthy_item_norms())
