"""The datasets of one run: ``datasets=[...]`` when given, else ``dataset``; named and checked up front.

Each dataset is known in the report by its label (``dataset.label``, default its
``name``), so two entries from the same source need their own labels, e.g.
``datasets=[{name:synthetic,label:small},{name:synthetic,label:large,synthetic:{n_users:5000}}]``.
A label becomes part of file paths, so it is letters, digits, ``_``, ``-`` and ``.``.

>>> from recsys.data.config import DatasetConfig
>>> [dataset_label(d) for d in run_datasets(DatasetConfig(), [DatasetConfig(label="a"), DatasetConfig(label="b")])]
['a', 'b']
>>> run_datasets(DatasetConfig(), [DatasetConfig(), DatasetConfig()])
Traceback (most recent call last):
...
recsys.errors.ConfigError: setting 'datasets[1].label': two datasets are called 'synthetic' (datasets[0] and datasets[1]). What to do: give each its own label, e.g. datasets=[{name:synthetic,label:synthetic_a},{name:synthetic,label:synthetic_b}]
"""

from __future__ import annotations

import re

from recsys.data.config import DatasetConfig, SplitConfig
from recsys.errors import ConfigError, RecsysError

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def dataset_label(dataset: DatasetConfig) -> str:
    """The dataset's name in report rows: ``label`` when set, else ``name``.

    >>> dataset_label(DatasetConfig(name="movielens")), dataset_label(DatasetConfig(label="ml_small"))
    ('movielens', 'ml_small')
    """
    return dataset.label or dataset.name


def run_datasets(dataset: DatasetConfig, datasets: list[DatasetConfig]) -> list[DatasetConfig]:
    """``datasets`` when non-empty, else ``[dataset]``; labels must be usable and distinct.

    Only names are checked here; :func:`check_sources` looks at the files.
    """
    entries = list(datasets) or [dataset]
    several = bool(datasets)
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        where = f"datasets[{i}]" if several else "dataset"
        if not isinstance(entry, DatasetConfig):
            raise ConfigError(f"expected a dataset entry such as {{name:synthetic}}, got {entry!r}", setting=where,
                              hint="write datasets=[{name:synthetic},{name:movielens,path:DIR}]")
        label = dataset_label(entry)
        if not _LABEL.match(label):
            raise ConfigError(f"the label {label!r} is not a plain name", setting=f"{where}.label",
                              hint="use letters, digits, '_', '-' and '.', starting with a letter or digit")
        if label in seen:
            raise ConfigError(
                f"two datasets are called {label!r} (datasets[{seen[label]}] and datasets[{i}])",
                setting=f"{where}.label",
                hint=f"give each its own label, e.g. datasets=[{{name:{entry.name},label:{label}_a}},"
                     f"{{name:{entry.name},label:{label}_b}}]")
        seen[label] = i
    return entries


def check_sources(datasets: list[DatasetConfig], split: SplitConfig | None = None) -> None:
    """Resolve every entry's source (loader and files, nothing read yet) as ``split`` reads them; errors name the entry.

    With ``split.protocol=given``, the files of ``split.files`` are every entry's interactions,
    as the prepare stage reads them.

    >>> check_sources([DatasetConfig(), DatasetConfig(name="movielen", label="ml")])
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'datasets[1]': ml: unknown dataset 'movielen'. What to do: use one of synthetic, movielens, amazon, table
    """
    from recsys.data.sources import open_source

    for i, entry in enumerate(datasets):
        try:
            open_source(entry, split)
        except RecsysError as err:
            raise type(err)(f"{dataset_label(entry)}: {err.problem}", file=err.file, column=err.column,
                            setting=_entry_setting(err.setting, i), hint=err.hint) from None


def _entry_setting(setting: str | None, i: int) -> str:
    """A ``dataset.*`` setting as the entry's (``datasets[i].*``); a run-wide one (``split.*``) stays.

    >>> _entry_setting("dataset.path", 1), _entry_setting(None, 0), _entry_setting("split.files.test", 0)
    ('datasets[1].path', 'datasets[0]', 'split.files.test')
    """
    if setting in (None, "dataset"):
        return f"datasets[{i}]"
    if setting.startswith("dataset."):
        return f"datasets[{i}].{setting.removeprefix('dataset.')}"
    return setting
