"""One up-front check of the whole configuration, before any stage starts.

:func:`check_config` runs every section's own check (ranges and choices: ``check_train_config``,
``check_eval_config``, ...), the ranges of settings that had none (the synthetic generator,
``data.*``, ``encoder.*``, ``ray.*``, every model's numeric settings), then the
cross-checks of settings that must agree with each other for the stages that run:

- ``train.val_k`` and ``diagnose.k`` are cut-offs of ``eval.k`` (the validation metric
  training stops on and the tuning trials are ranked by, and the metric the diagnosis
  rules read, are reported by the evaluation too);
- the diagnosis reads the validation curve training writes (``val/ndcg@<train.val_k>``);
- ``diagnose.splits`` and ``compare.split`` are among ``eval.splits``, ``compare.metrics``' cut-offs in ``eval.k``;
- ``tune.model`` is one of ``models``; a directed search needs the diagnosis;
- a baseline named on the command line (``eval.baseline``, ``diagnose.baseline_model``) is one of ``models``;
- ``data.implicit_threshold`` lies inside ``dataset.rating_scale``;
- a local Ray's ``ray.num_cpus`` holds a training worker and a tuning trial.

``rayjobs`` entry points call it before Ray starts and :func:`recsys.pipeline.run_stages` before
its first stage; each failure is a :class:`~recsys.errors.ConfigError` naming the setting.

>>> from dataclasses import replace
>>> cfg = RecsysConfig()
>>> check_config(cfg)
>>> check_config(replace(cfg, eval=replace(cfg.eval, k=[5, 20])))
Traceback (most recent call last):
...
recsys.errors.ConfigError: setting 'train.val_k': the validation metric NDCG@10 is not among the evaluated cut-offs eval.k=[5, 20]. What to do: add 10 to eval.k, or set train.val_k to one of [5, 20]
>>> check_config(replace(cfg, eval=replace(cfg.eval, k=[5, 20])), stages=["prepare"])
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Sequence
from typing import Optional

from recsys.config import RecsysConfig
from recsys.console import check_log_config
from recsys.data.checks import TIMESTAMP_UNITS
from recsys.data.config import DataConfig, DatasetConfig, SyntheticConfig
from recsys.data.datasets import run_datasets
from recsys.data.prepare import check_data_config
from recsys.data.given import check_given_dataset
from recsys.data.split import check_split_config
from recsys.diagnose.config import check_diagnose_config
from recsys.embed.config import EncoderConfig
from recsys.embed.encoder import check_encoder_config
from recsys.errors import ConfigError
from recsys.evaluate.config import SPLITS, check_eval_config
from recsys.evaluate.crossdata import check_compare_config
from recsys.models.registry import MODELS, check_model_names
from recsys.models.sasrec import check_sasrec
from recsys.models.textgraph import check_textgraph
from recsys.models.two_tower import check_two_tower
from recsys.runtime import RayConfig
from recsys.train.config import check_train_config
from recsys.tune.config import check_tune_config

ALL_STAGES = ("prepare", "embed", "train", "evaluate", "diagnose", "tune", "compare")
MODEL_CHECKS = {"two_tower": check_two_tower, "sasrec": check_sasrec, "textgraph": check_textgraph}
# model settings (by field name) that must be >= 1 (integers) or > 0 (floats); every other number must be >= 0
POSITIVE_MODEL_SETTINGS = ("dim", "width", "heads", "max_len", "max_history", "temperature", "init_std",
                           "mlp_init_std")


def check_config(cfg: RecsysConfig, stages: Optional[Sequence[str]] = None, explicit: Collection[str] = ()) -> None:
    """Raise a :class:`ConfigError` naming the setting when ``cfg`` cannot run ``stages`` (default: every stage).

    ``explicit``: the settings the user gave (command-line keys such as ``eval.baseline``); a model
    named there must be one of ``models``, where the default may name one the run leaves out.
    """
    run = set(ALL_STAGES if stages is None else stages)
    check_sections(cfg, trains="train" in run)
    check_agreement(cfg, run, explicit)


def check_sections(cfg: RecsysConfig, trains: bool = True) -> None:
    """Every section on its own: choices and ranges (``trains``: the run trains ``models``).

    >>> check_sections(RecsysConfig())
    """
    for where, entry in _dataset_entries(cfg):
        check_dataset_ranges(entry, where)
        check_given_dataset(entry, cfg.split)
    check_data_config(cfg.data)
    check_data_ranges(cfg.data)
    check_split_config(cfg.split)
    check_encoder_config(cfg.encoder)
    check_encoder_ranges(cfg.encoder)
    check_models(cfg, trains)
    check_train_config(cfg.train)
    check_eval_config(cfg.eval)
    if len(set(cfg.eval.k)) != len(cfg.eval.k):
        raise ConfigError(f"a cut-off appears twice in {list(cfg.eval.k)}", setting="eval.k",
                          hint="list each cut-off once, e.g. eval.k=[5,10,20]")
    check_compare_config(cfg.compare)
    check_diagnose_config(cfg.diagnose)
    _check_diagnose_names(cfg)
    check_tune_config(cfg.tune)
    for setting, name in (("eval.baseline", cfg.eval.baseline), ("diagnose.baseline_model", cfg.diagnose.baseline_model),
                          ("tune.model", cfg.tune.model)):
        if name is not None and name not in MODELS:
            raise ConfigError(f"unknown model {name!r}", setting=setting, hint=f"models are {', '.join(MODELS)}")
    check_ray_ranges(cfg.ray)
    check_log_config(cfg.log)
    check_numbers(cfg)


def check_numbers(cfg: RecsysConfig) -> None:
    """Every number of the settings tree is finite, every ``seed`` an integer >= 0, ``split.leave_last_n`` >= 1
    and ``dataset.synthetic.start_timestamp`` >= 0 (free-form mappings and plugin models' sections aside).

    >>> from dataclasses import replace
    >>> check_numbers(replace(RecsysConfig(), eval=replace(RecsysConfig().eval, alpha=float("nan"))))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'eval.alpha': value nan is out of range: it must be a finite number. What to do: use e.g. eval.alpha=0.05
    """
    for path, value, default in _numbers(cfg, type(cfg)(), ""):
        if isinstance(value, float) and not math.isfinite(value):
            _fail(path, value, "a finite number", f"{path}={default}")
        if path.endswith(".seed") and value < 0:
            _fail(path, value, "an integer >= 0", f"{path}={default}")
    if cfg.split.leave_last_n < 1:
        _fail("split.leave_last_n", cfg.split.leave_last_n, "an integer >= 1", "split.leave_last_n=1")
    for where, entry in _dataset_entries(cfg):
        if entry.synthetic.start_timestamp < 0:
            _fail(f"{where}.synthetic.start_timestamp", entry.synthetic.start_timestamp,
                  "seconds since 1970, >= 0", f"{where}.synthetic.start_timestamp=1600000000")


def _numbers(node, default, prefix: str):
    for f in dataclasses.fields(node):
        value, path = getattr(node, f.name), f"{prefix}{f.name}"
        base = getattr(default, f.name, None) if default is not None else None
        if dataclasses.is_dataclass(value):
            if prefix == "model." and not type(value).__module__.startswith("recsys.models."):
                continue                                    # a plugin model's settings: its own checks
            yield from _numbers(value, base if dataclasses.is_dataclass(base) else None, f"{path}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield path, value, base


def _dataset_entries(cfg: RecsysConfig):
    entries = run_datasets(cfg.dataset, cfg.datasets)      # labels usable and distinct
    several = bool(cfg.datasets)
    return [(f"datasets[{i}]" if several else "dataset", entry) for i, entry in enumerate(entries)]


def _fail(setting: str, value, expected: str, example: str) -> None:
    raise ConfigError(f"value {value!r} is out of range: it must be {expected}", setting=setting,
                      hint=f"use e.g. {example}")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_dataset_ranges(entry: DatasetConfig, where: str = "dataset") -> None:
    """Ranges of a dataset entry and of its synthetic generator.

    >>> check_dataset_ranges(DatasetConfig(synthetic=SyntheticConfig(n_users=0)))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'dataset.synthetic.n_users': value 0 is out of range: it must be an integer >= 1. What to do: use e.g. dataset.synthetic.n_users=2000
    """
    units = ("auto", *TIMESTAMP_UNITS)          # what validation converts (recsys.data.checks)
    if entry.timestamp_unit not in units:
        raise ConfigError(f"unknown value {entry.timestamp_unit!r}", setting=f"{where}.timestamp_unit",
                          hint=f"use one of {', '.join(units)}")
    scale = entry.rating_scale
    if scale is not None and (len(scale) != 2 or not all(_number(v) and math.isfinite(v) for v in scale)
                              or scale[0] >= scale[1]):
        raise ConfigError(f"expected [min, max] with min < max, got {list(scale)!r}", setting=f"{where}.rating_scale",
                          hint=f"use e.g. {where}.rating_scale=[1,5], or null for no check")
    syn: SyntheticConfig = entry.synthetic
    at_least_one = ("n_users", "n_items", "n_topics", "span_days", "chunk_users")
    for name in at_least_one:
        value = getattr(syn, name)
        if not isinstance(value, int) or value < 1:
            _fail(f"{where}.synthetic.{name}", value, "an integer >= 1",
                  f"{where}.synthetic.{name}={getattr(SyntheticConfig(), name)}")
    fractions = ("topic_affinity", "drift", "cold_item_fraction", "popularity_user_fraction", "random_user_fraction")
    for name in fractions:
        value = getattr(syn, name)
        if not 0.0 <= value <= 1.0:
            _fail(f"{where}.synthetic.{name}", value, "between 0 and 1",
                  f"{where}.synthetic.{name}={getattr(SyntheticConfig(), name)}")
    if syn.popularity_user_fraction + syn.random_user_fraction > 1.0:
        raise ConfigError("popularity_user_fraction + random_user_fraction exceeds 1",
                          setting=f"{where}.synthetic.random_user_fraction", hint="keep their sum <= 1")
    for name, floor in (("mean_interactions_per_user", "> 0"), ("zipf_exponent", ">= 0")):
        value = getattr(syn, name)
        if not math.isfinite(value) or (value <= 0 if floor == "> 0" else value < 0):
            _fail(f"{where}.synthetic.{name}", value, f"a finite number {floor}",
                  f"{where}.synthetic.{name}={getattr(SyntheticConfig(), name)}")


def check_data_ranges(data: DataConfig) -> None:
    """Ranges of ``data.*`` (the choices are :func:`recsys.data.prepare.check_data_config`'s).

    >>> check_data_ranges(DataConfig(kcore_max_iterations=0))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'data.kcore_max_iterations': value 0 is out of range: it must be an integer >= 1. What to do: use e.g. data.kcore_max_iterations=50
    """
    for name in ("min_user_interactions", "min_item_interactions"):
        if getattr(data, name) < 0:
            _fail(f"data.{name}", getattr(data, name), "an integer >= 0 (0: no filter)", f"data.{name}=5")
    if data.kcore_max_iterations < 1:
        _fail("data.kcore_max_iterations", data.kcore_max_iterations, "an integer >= 1", "data.kcore_max_iterations=50")
    if data.implicit_threshold is not None and not math.isfinite(data.implicit_threshold):
        _fail("data.implicit_threshold", data.implicit_threshold, "a finite number, or null", "data.implicit_threshold=4")


def check_encoder_ranges(cfg: EncoderConfig) -> None:
    """Ranges of ``encoder.*`` not covered by :func:`recsys.embed.encoder.check_encoder_config`.

    >>> check_encoder_ranges(EncoderConfig(actors=0))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'encoder.actors': value 0 is out of range: it must be an integer >= 1, or null (sized from the cluster). What to do: use e.g. encoder.actors=2
    """
    if cfg.engine not in ("ray", "local"):
        raise ConfigError(f"unknown value {cfg.engine!r}", setting="encoder.engine", hint="use one of ray, local")
    for name, example in (("actors", 2), ("threads_per_actor", 2)):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            _fail(f"encoder.{name}", value, "an integer >= 1, or null (sized from the cluster)",
                  f"encoder.{name}={example}")
    if cfg.max_chars < 1:
        _fail("encoder.max_chars", cfg.max_chars, "an integer >= 1", "encoder.max_chars=4096")
    if not cfg.progress_every_s >= 0:
        _fail("encoder.progress_every_s", cfg.progress_every_s, ">= 0 (0: every block)", "encoder.progress_every_s=10")


def check_ray_ranges(cfg: RayConfig) -> None:
    """Ranges of ``ray.*``.

    >>> check_ray_ranges(RayConfig(num_cpus=0))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'ray.num_cpus': value 0 is out of range: it must be an integer >= 1, or null (every core). What to do: use e.g. ray.num_cpus=2
    """
    if cfg.num_cpus is not None and cfg.num_cpus < 1:
        _fail("ray.num_cpus", cfg.num_cpus, "an integer >= 1, or null (every core)", "ray.num_cpus=2")
    if cfg.num_gpus is not None and cfg.num_gpus < 0:
        _fail("ray.num_gpus", cfg.num_gpus, "an integer >= 0, or null (every GPU)", "ray.num_gpus=1")
    if cfg.object_store_memory is not None and cfg.object_store_memory < 78_643_200:   # Ray's own minimum (75 MiB)
        _fail("ray.object_store_memory", cfg.object_store_memory, "at least 78643200 bytes (75 MiB), or null",
              "ray.object_store_memory=2000000000")


def check_models(cfg: RecsysConfig, trains: bool = True) -> None:
    """``models`` names registered models, each once; every model section's numbers are in range.

    >>> from dataclasses import replace
    >>> check_models(replace(RecsysConfig(), models=["mf", "mf"]))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'models': 'mf' is listed twice. What to do: list each model once, e.g. models=[pop,mf]
    """
    names = list(cfg.models)
    check_model_names(names)
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{name!r} is listed twice", setting="models", hint="list each model once, e.g. models=[pop,mf]")
    if trains and not names:
        raise ConfigError("no model to train", setting="models", hint="name at least one, e.g. models=[pop,mf]")
    for section in dataclasses.fields(cfg.model):
        settings = getattr(cfg.model, section.name)
        if dataclasses.is_dataclass(settings) and type(settings).__module__.startswith("recsys.models."):
            check_model_ranges(settings, f"model.{section.name}")      # the built-in models (a plugin checks its own)
        if section.name in MODEL_CHECKS:
            MODEL_CHECKS[section.name](settings)


def check_model_ranges(settings, where: str) -> None:
    """Every number of a model's settings is finite and >= 0; sizes, temperatures and init scales are > 0;
    dropout rates are below 1.

    >>> from recsys.models.mf import MFConfig
    >>> check_model_ranges(MFConfig(dim=0), "model.mf")
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'model.mf.dim': value 0 is out of range: it must be > 0. What to do: use e.g. model.mf.dim=64
    """
    defaults = type(settings)()
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if not _number(value):
            continue
        example = f"{where}.{f.name}={getattr(defaults, f.name)}"
        if not math.isfinite(value):
            _fail(f"{where}.{f.name}", value, "a finite number", example)
        if f.name in POSITIVE_MODEL_SETTINGS and value <= 0:
            _fail(f"{where}.{f.name}", value, "> 0", example)
        if value < 0:
            _fail(f"{where}.{f.name}", value, ">= 0", example)
        if f.name.endswith("dropout") and value >= 1:
            _fail(f"{where}.{f.name}", value, "a rate in [0, 1)", example)


def _check_diagnose_names(cfg: RecsysConfig) -> None:
    from recsys.diagnose.engine import RULES

    unknown = sorted(set(cfg.diagnose.disabled_rules) - set(RULES))
    if unknown:
        raise ConfigError(f"unknown rule(s) {', '.join(unknown)}", setting="diagnose.disabled_rules",
                          hint=f"use names from: {', '.join(RULES)}")
    bad = [s for s in cfg.diagnose.splits if s not in SPLITS]
    if bad:
        raise ConfigError(f"unknown split(s) {bad}", setting="diagnose.splits", hint="use val and/or test")
    if cfg.diagnose.importance.split not in SPLITS:
        raise ConfigError(f"unknown split {cfg.diagnose.importance.split!r}", setting="diagnose.importance.split",
                          hint="use val or test")


def check_agreement(cfg: RecsysConfig, stages: Collection[str] = ALL_STAGES, explicit: Collection[str] = ()) -> None:
    """Settings of different sections that must agree for the ``stages`` that run.

    >>> from dataclasses import replace
    >>> cfg = RecsysConfig()
    >>> check_agreement(replace(cfg, tune=replace(cfg.tune, model="sasrec"), models=["pop", "mf"]))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'tune.model': the search tunes 'sasrec', which models=['pop', 'mf'] does not train. What to do: add it to models, or set tune.model to one of mf
    """
    models = list(cfg.models)
    trained = "train" in stages and any(_trainable(name) for name in models)
    evaluated = "evaluate" in stages
    ks = list(cfg.eval.k)
    if trained and evaluated and cfg.train.val_k not in ks:
        raise ConfigError(f"the validation metric NDCG@{cfg.train.val_k} is not among the evaluated cut-offs "
                          f"eval.k={ks}", setting="train.val_k",
                          hint=f"add {cfg.train.val_k} to eval.k, or set train.val_k to one of {ks}")
    diagnosed = "diagnose" in stages and cfg.diagnose.enabled
    if diagnosed:
        _check_diagnosis_agrees(cfg, ks, evaluated, trained)
    if "tune" in stages and cfg.tune.enabled:
        _check_tune_agrees(cfg, models, diagnosed)
    if "compare" in stages:
        check_compare_config(cfg.compare, ks)               # its metrics' cut-offs are evaluated
    if "compare" in stages and evaluated and cfg.compare.split not in cfg.eval.splits:
        raise ConfigError(f"the comparison is about the {cfg.compare.split} split, which eval.splits="
                          f"{list(cfg.eval.splits)} leaves out", setting="compare.split",
                          hint=f"set compare.split to one of {list(cfg.eval.splits)}")
    for setting, name in (("eval.baseline", cfg.eval.baseline), ("diagnose.baseline_model", cfg.diagnose.baseline_model)):
        if setting in explicit and name is not None and name not in models:
            raise ConfigError(f"the baseline {name!r} is not one of models={models}", setting=setting,
                              hint=f"add it to models, e.g. models=[{','.join([name, *models])}]")
    if evaluated and cfg.eval.external:                     # lists from outside: names, datasets, files
        from recsys.data.datasets import dataset_label, run_datasets
        from recsys.evaluate.external_files import check_lists_for_run

        labels = [dataset_label(entry) for entry in run_datasets(cfg.dataset, cfg.datasets)]
        check_lists_for_run(cfg.eval.external, models, labels)
    _check_threshold_in_scale(cfg)
    _check_local_resources(cfg, stages)


def _trainable(name: str) -> bool:
    """Whether model ``name`` is trained (popularity is not); a name the registry does not know counts as trained."""
    entry = MODELS.get(name)
    model_type = entry[1] if isinstance(entry, tuple) else getattr(entry, "builder", entry)
    return bool(getattr(model_type, "trainable", True))


def _check_diagnosis_agrees(cfg: RecsysConfig, ks: list[int], evaluated: bool, trained: bool) -> None:
    diag = cfg.diagnose
    if evaluated and diag.k not in ks:
        raise ConfigError(f"the diagnosis reads {diag.metric}@{diag.k}, which eval.k={ks} does not evaluate",
                          setting="diagnose.k", hint=f"add {diag.k} to eval.k, or set diagnose.k to one of {ks}")
    if evaluated and not set(diag.splits) & set(cfg.eval.splits):
        raise ConfigError(f"none of diagnose.splits={list(diag.splits)} is evaluated (eval.splits="
                          f"{list(cfg.eval.splits)})", setting="diagnose.splits",
                          hint=f"use splits of eval.splits, e.g. diagnose.splits={list(cfg.eval.splits)}")
    written = f"val/ndcg@{cfg.train.val_k}"
    if trained and diag.val_series != written:
        where = "diagnose.val_metric" if diag.val_metric else "diagnose.k"
        raise ConfigError(f"the diagnosis reads the validation curve {diag.val_series}, but training records "
                          f"{written} (train.val_k={cfg.train.val_k})", setting=where,
                          hint=f"set diagnose.val_metric={written}, or make diagnose.metric@k and train.val_k agree")


def _check_tune_agrees(cfg: RecsysConfig, models: list[str], diagnosed: bool) -> None:
    tune = cfg.tune
    trainable = [name for name in models if _trainable(name)]
    if tune.model is not None and tune.model not in models:
        raise ConfigError(f"the search tunes {tune.model!r}, which models={models} does not train",
                          setting="tune.model",
                          hint=f"add it to models, or set tune.model to one of {', '.join(trainable) or 'a trained model'}")
    if tune.mode in ("directed", "both") and trainable and not diagnosed:
        raise ConfigError(f"a {tune.mode} search needs the diagnosis, which this run does not make",
                          setting="tune.mode", hint="set diagnose.enabled=true, or use tune.mode=undirected")


def _check_threshold_in_scale(cfg: RecsysConfig) -> None:
    threshold = cfg.data.implicit_threshold
    if threshold is None:
        return
    for where, entry in _dataset_entries(cfg):
        scale = entry.rating_scale
        if scale is not None and not scale[0] <= threshold <= scale[1]:
            raise ConfigError(f"the threshold {threshold} lies outside {where}.rating_scale={list(scale)}: "
                              "it would keep every rating or none", setting="data.implicit_threshold",
                              hint=f"use a value between {scale[0]} and {scale[1]}")


def _check_local_resources(cfg: RecsysConfig, stages: Collection[str]) -> None:
    cpus = cfg.ray.num_cpus
    if cfg.ray.address is not None or cpus is None:
        return
    train = cfg.train
    if "train" in stages and train.engine == "ray" and train.cpus_per_worker is not None \
            and train.num_workers * train.cpus_per_worker > cpus:
        raise ConfigError(f"{train.num_workers} workers x {train.cpus_per_worker} CPUs do not fit the local Ray's "
                          f"ray.num_cpus={cpus}", setting="train.num_workers",
                          hint="use fewer workers, smaller train.cpus_per_worker, or more ray.num_cpus")
    if "tune" in stages and cfg.tune.enabled and cfg.tune.cpus_per_trial > cpus:
        raise ConfigError(f"one trial asks for {cfg.tune.cpus_per_trial} CPUs; the local Ray has ray.num_cpus={cpus}",
                          setting="tune.cpus_per_trial", hint=f"use tune.cpus_per_trial={cpus} or less")
