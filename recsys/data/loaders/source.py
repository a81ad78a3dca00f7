"""Load a whole source: detect its layout, then read interactions, items and users.

The loaders of each publisher live in their own module; :data:`LOADERS` picks one by
``SourceLayout.name``. The Ray Data path calls :func:`read_interactions` once per
interaction file; :func:`load_source` reads everything in this process.

>>> import tempfile, pathlib
>>> from recsys.data.config import DatasetConfig
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "ratings.csv").write_text("userId,movieId,rating,timestamp\\n1,11,4.0,964982703\\n")
>>> _ = (root / "movies.csv").write_text('movieId,title,genres\\n11,"American President, The (1995)",Comedy\\n')
>>> source = load_source(DatasetConfig(name="movielens", path=str(root)))
>>> source.layout.format, source.interactions.height, source.items["title"][0]
('ml-csv', 1, 'American President, The (1995)')
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from types import ModuleType

import polars as pl

from recsys.data.config import DatasetConfig
from recsys.data.loaders import amazon, files, movielens, table
from recsys.data.loaders.layout import SourceLayout, detect_layout
from recsys.data.loaders.parse import SourceWarning

LOADERS: dict[str, ModuleType] = {"movielens": movielens, "amazon": amazon, "table": table}


@dataclass
class LoadedSource:
    """Everything read from one source, with each file's size and SHA-256 for caching."""

    layout: SourceLayout
    interactions: pl.DataFrame
    items: pl.DataFrame
    users: pl.DataFrame | None
    files: list[tuple[str, int, str]]
    notes: list[str] = field(default_factory=list)   # tolerated oddities (also emitted as warnings)


def read_interactions(layout: SourceLayout, file: str, cfg: DatasetConfig) -> pl.DataFrame:
    """One interaction file of ``layout`` as the canonical table (``recsys.data.schema``)."""
    return LOADERS[layout.name].read_interactions(layout, file, cfg)


def read_items(layout: SourceLayout, cfg: DatasetConfig) -> pl.DataFrame:
    """The item table: ``item_id`` (text) plus text fields, one row per item."""
    return LOADERS[layout.name].read_items(layout, cfg)


def read_users(layout: SourceLayout, cfg: DatasetConfig) -> pl.DataFrame | None:
    """The user table (``user_id`` plus attributes), or None when the source has none."""
    return LOADERS[layout.name].read_users(layout, cfg)


def load_source(cfg: DatasetConfig) -> LoadedSource:
    """Detect the layout and read every file of the source in this process."""
    layout = detect_layout(cfg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SourceWarning)
        parts = [read_interactions(layout, file, cfg) for file in layout.interaction_files]
        interactions = parts[0] if len(parts) == 1 else pl.concat(parts, how="vertical")
        items = read_items(layout, cfg)
        users = read_users(layout, cfg)
    notes = []
    for warning in caught:
        if issubclass(warning.category, SourceWarning):
            notes.append(str(warning.message))
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    fingerprints = [(f, files.file_size(f), files.file_fingerprint(f)) for f in layout.all_files()]
    return LoadedSource(layout, interactions, items, users, fingerprints, notes)
