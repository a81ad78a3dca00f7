"""The user's own split (``split.protocol=given``): a label column, or one file per split.

Comparing with another system means evaluating on *its* test set, so the split
comes with the data instead of being drawn:

- a column of the interaction table holding ``train`` / ``val`` / ``test``
  (``split.column``, default ``split``; for ``dataset=table`` also
  ``dataset.columns.split``, which wins when both are set);
- one interaction file per split, ``split.files={train: A, val: B, test: C}``
  (val optional), read by the table loader with ``dataset.columns``, relative paths
  resolved from ``dataset.path`` when it is set. RecBole's benchmark files
  (``*.train.inter``, ``*.valid.inter``, ``*.test.inter``) load as they are.

Checks, each a :class:`~recsys.errors.DataError` naming the file and column: a label
other than train/val/test (with the values and their counts), no train rows, no
test rows, and an event (user_id, item_id, timestamp) in two splits. Users and items
that appear only outside train are kept and counted as cold by the audit, as with
every protocol. The filters (``data.*``) still apply, to every split.

>>> check_given_files({"train": "a.csv", "test": "c.csv"})
>>> check_given_files({"train": "a.csv", "eval": "c.csv"})
Traceback (most recent call last):
...
recsys.errors.ConfigError: setting 'split.files': unknown split name(s) ['eval']. What to do: give split.files={train: FILE, val: FILE, test: FILE} (val may be left out)
"""

from __future__ import annotations

from dataclasses import replace

import polars as pl

from recsys.data.config import DatasetConfig, SplitConfig
from recsys.data.schema import ITEM_ID, SPLIT, SPLITS, TIMESTAMP, USER_ID
from recsys.errors import ConfigError, DataError

GIVEN = "given"
_FILES_HINT = "give split.files={train: FILE, val: FILE, test: FILE} (val may be left out)"


def given_files(split: SplitConfig) -> dict[str, str]:
    """The files of ``split.files`` that are set (null means no file for that split).

    >>> given_files(SplitConfig(files={"train": "a.csv", "val": None, "test": "c.csv"}))
    {'train': 'a.csv', 'test': 'c.csv'}
    """
    return {name: str(path) for name, path in (split.files or {}).items() if path}


def check_given_files(files: dict[str, str]) -> None:
    """``split.files`` names train and test (val optional), each once, and nothing else."""
    unknown = sorted(set(files) - set(SPLITS))
    if unknown:
        raise ConfigError(f"unknown split name(s) {unknown}", setting="split.files", hint=_FILES_HINT)
    for name in ("train", "test"):
        if not files.get(name):
            raise ConfigError(f"no {name} file", setting="split.files", hint=_FILES_HINT)
    paths = list(files.values())
    if len(set(paths)) < len(paths):
        raise ConfigError(f"the same file is named for two splits: {files}", setting="split.files",
                          hint="each split needs its own file")


def check_given_config(split: SplitConfig) -> None:
    """The settings of a given split that need no data (called by ``check_split_config``).

    >>> check_given_config(SplitConfig(protocol="given", column=""))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'split.column': the given split needs the column of train/val/test labels. What to do: set split.column=NAME, or give one file per split with split.files={train: A, test: B}
    """
    if given_files(split):
        check_given_files(given_files(split))
    elif not split.column:
        raise ConfigError("the given split needs the column of train/val/test labels", setting="split.column",
                          hint="set split.column=NAME, or give one file per split with split.files={train: A, test: B}")


def label_column(dataset: DatasetConfig, split: SplitConfig) -> str:
    """The source column that holds the labels: ``dataset.columns.split``, else ``split.column``.

    >>> label_column(DatasetConfig(columns={"split": "fold"}), SplitConfig(protocol="given"))
    'fold'
    """
    return dataset.columns.get(SPLIT) or split.column


def loader_dataset(dataset: DatasetConfig, split: SplitConfig) -> DatasetConfig:
    """The dataset settings the loader reads with: the label column mapped for the column form.

    Anything but ``dataset=table`` is refused: the publishers' formats hold no split.

    >>> loader_dataset(DatasetConfig(name="table"), SplitConfig(protocol="given")).columns
    {'split': 'split'}
    """
    if split.protocol != GIVEN:
        if dataset.columns.get(SPLIT):
            raise ConfigError("dataset.columns.split maps the labels of a given split, but split.protocol is "
                              f"{split.protocol}", setting="dataset.columns.split",
                              hint="set split.protocol=given to use the labels, or remove dataset.columns.split")
        return dataset
    if dataset.name != "table":
        raise ConfigError(f"split.protocol=given reads the split from a table of interactions, not from "
                          f"dataset={dataset.name}", setting="split.protocol",
                          hint="use dataset=table with dataset.interactions=FILE and a label column (split.column), "
                          "or one file per split (split.files={train: A, val: B, test: C})")
    if given_files(split):
        if dataset.interactions:
            raise ConfigError("both dataset.interactions and split.files name the interactions",
                              setting="split.files",
                              hint="give the interactions either as one table with a label column "
                              "(dataset.interactions, split.column) or as one file per split (split.files)")
        if dataset.columns.get(SPLIT):
            raise ConfigError("dataset.columns.split names a label column, but split.files already gives each "
                              "file's split", setting="dataset.columns.split", hint="remove dataset.columns.split")
        return dataset
    return replace(dataset, columns={**dataset.columns, SPLIT: label_column(dataset, split)})


def check_given_dataset(dataset: DatasetConfig, split: SplitConfig) -> None:
    """Refuse, before any work, a dataset that cannot carry ``split`` (see :func:`loader_dataset`).

    >>> check_given_dataset(DatasetConfig(name="synthetic"), SplitConfig(protocol="given"))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'split.protocol': split.protocol=given reads the split from a table of interactions, not from dataset=synthetic. What to do: use dataset=table with dataset.interactions=FILE and a label column (split.column), or one file per split (split.files={train: A, val: B, test: C})
    """
    loader_dataset(dataset, split)


def check_label_counts(stats: dict, source: str, column: str | None) -> None:
    """A given split needs train and test rows (from the merged validation statistics).

    >>> check_label_counts({"n_split_labels": {"train": 0, "val": 1, "test": 4}}, "events.csv", "fold")
    Traceback (most recent call last):
    ...
    recsys.errors.DataError: events.csv, column 'fold': the given split has no train rows (rows per label: train 0, val 1, test 4). What to do: label the interactions to train on 'train' (and those to evaluate on 'test')
    """
    counts = stats.get("n_split_labels")
    if counts is None:
        raise DataError("the interactions have no split labels", file=source, column=column,
                        hint="set split.column to the column of train/val/test labels")
    shown = ", ".join(f"{name} {counts.get(name, 0)}" for name in SPLITS)
    for name in ("train", "test"):
        if not counts.get(name):
            raise DataError(f"the given split has no {name} rows (rows per label: {shown})", file=source,
                            column=column,
                            hint="label the interactions to train on 'train' (and those to evaluate on 'test')")


def overlap_pieces(frame: pl.DataFrame) -> dict:
    """Events (user_id, item_id, timestamp) labelled with more than one split, and the first of them.

    Additive over blocks that hold whole users (:func:`merge_overlaps`).

    >>> f = pl.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["a", "a", "a"], "timestamp": [1, 1, 1],
    ...                   "split": ["test", "train", "train"]})
    >>> overlap_pieces(f)
    {'n': 1, 'example': ('u', 'a', 1, ['test', 'train'])}
    """
    groups = (frame.group_by(USER_ID, ITEM_ID, TIMESTAMP)
              .agg(pl.col(SPLIT).unique().sort().alias("labels"))
              .filter(pl.col("labels").list.len() > 1))
    if groups.height == 0:
        return {"n": 0, "example": None}
    first = groups.sort(USER_ID, ITEM_ID, TIMESTAMP).row(0)
    return {"n": groups.height, "example": (first[0], first[1], first[2], list(first[3]))}


def merge_overlaps(a: dict, b: dict) -> dict:
    """Combine two blocks' :func:`overlap_pieces` (the example with the smallest key wins).

    >>> merge_overlaps({"n": 1, "example": ("v", "a", 1, ["test", "train"])},
    ...                {"n": 2, "example": ("u", "b", 5, ["train", "val"])})
    {'n': 3, 'example': ('u', 'b', 5, ['train', 'val'])}
    """
    examples = [e for e in (a["example"], b["example"]) if e is not None]
    return {"n": a["n"] + b["n"], "example": min(examples, key=lambda e: e[:3]) if examples else None}


def check_overlaps(pieces: dict, source: str, column: str | None, files: dict[str, str]) -> None:
    """Raise when an event is in two splits, naming the files (``files``: label -> file) or the column.

    >>> check_overlaps({"n": 2, "example": ("u", "a", 7, ["test", "train"])}, "x", None,
    ...                {"train": "a.inter", "test": "c.inter"})
    Traceback (most recent call last):
    ...
    recsys.errors.DataError: a.inter, c.inter: 2 events (user_id, item_id, timestamp) are in more than one split, e.g. user_id='u', item_id='a', timestamp=7 is in test (c.inter) and train (a.inter). What to do: a given split puts each event in one split: remove the repeats from all but one split
    """
    if not pieces["n"]:
        return
    user, item, ts, labels = pieces["example"]
    where = " and ".join(f"{label} ({files[label]})" if label in files else label for label in labels)
    involved = ", ".join(files[label] for label in SPLITS if label in labels and label in files)
    raise DataError(f"{pieces['n']} events (user_id, item_id, timestamp) are in more than one split, "
                    f"e.g. user_id={user!r}, item_id={item!r}, timestamp={ts} is in {where}",
                    file=involved or source, column=None if files else column,
                    hint="a given split puts each event in one split: remove the repeats from all but one split")


def describe_given(dataset: DatasetConfig, split: SplitConfig, files: dict[str, str], hashes: dict[str, str],
                   label_counts: dict[str, int]) -> dict:
    """The manifest's record of a given split: where the labels came from, the files' SHA-256, rows per label.

    >>> describe_given(DatasetConfig(), SplitConfig(protocol="given"), {}, {}, {"train": 2, "val": 0, "test": 1})
    {'source': 'column', 'column': 'split', 'rows_loaded': {'train': 2, 'val': 0, 'test': 1}}
    """
    rows = {name: label_counts.get(name, 0) for name in SPLITS}
    if files:
        return {"source": "files",
                "files": {label: {"path": path, "sha256": hashes.get(path)} for label, path in files.items()},
                "rows_loaded": rows}
    return {"source": "column", "column": label_column(dataset, split), "rows_loaded": rows}
