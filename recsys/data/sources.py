"""One interface over every source: the synthetic generator and the publishers' files.

A source is a list of independent *parts* (interaction files, or synthetic user
chunks) plus the item and user tables. The local path reads every part in this
process; the Ray Data path maps :meth:`Source.read_part` over the parts in parallel.

>>> from recsys.data.config import DatasetConfig, SyntheticConfig
>>> src = open_source(DatasetConfig(synthetic=SyntheticConfig(n_users=50, n_items=40, chunk_users=20)))
>>> src.parts
[0, 1, 2]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from recsys.data import synthetic
from recsys.data.config import DatasetConfig, SplitConfig
from recsys.data.given import GIVEN, SPLIT, given_files, loader_dataset
from recsys.data.loaders.layout import split_files_layout
from recsys.data.schema import SPLITS
from recsys.data.loaders import (
    SourceLayout,
    detect_layout,
    file_fingerprint,
    read_interactions,
    read_items,
    read_users,
)
from recsys.errors import ConfigError

SOURCE_NAMES = ("synthetic", "movielens", "amazon", "table")


@dataclass
class Source:
    dataset: DatasetConfig
    layout: SourceLayout | None = None
    parts: list[Any] = field(default_factory=list)
    split_files: dict[str, str] = field(default_factory=dict)   # given split from files: split name -> file

    @property
    def format(self) -> str:
        return self.layout.format if self.layout else "synthetic"

    def read_part(self, part: Any) -> pl.DataFrame:
        """Canonical interactions of one part (a file path or a synthetic chunk index)."""
        if self.layout is None:
            return synthetic.generate_chunk(self.dataset.synthetic, int(part))
        frame = read_interactions(self.layout, part, self.dataset)
        for name, file in self.split_files.items():
            if file == part:
                frame = frame.with_columns(pl.lit(name, dtype=pl.Utf8).alias(SPLIT))
        return frame

    @property
    def label(self) -> str:
        """How errors about the source as a whole name it."""
        if self.split_files:
            return ", ".join(self.split_files.values())
        return str(self.dataset.path or self.dataset.interactions or self.dataset.name)

    def part_label(self, part: Any) -> str:
        return f"synthetic chunk {part}" if self.layout is None else str(part)

    def items(self) -> pl.DataFrame:
        if self.layout is None:
            return synthetic.generate_items(self.dataset.synthetic)
        return read_items(self.layout, self.dataset)

    def users(self) -> pl.DataFrame | None:
        if self.layout is None:
            return synthetic.generate_users(self.dataset.synthetic)
        return read_users(self.layout, self.dataset)

    def inputs(self) -> dict:
        """What the prepared result depends on: the generator's settings or the input files' hashes."""
        if self.layout is None:
            return {"synthetic": asdict(self.dataset.synthetic)}
        files = (
            list(self.layout.interaction_files)
            + list(self.layout.item_files)
            + list(self.layout.user_files)
            + [f for extra in self.layout.extra_files.values() for f in extra]
        )
        return {"files": {f: file_fingerprint(f) for f in files}}

    def describe(self) -> dict:
        return {"name": self.dataset.name, "format": self.format, "path": self.dataset.path}


def open_source(dataset: DatasetConfig, split: SplitConfig | None = None) -> Source:
    """Resolve ``dataset.*`` to a :class:`Source`; the files are detected, not yet read.

    With ``split.protocol=given`` the source also reads the split: its label column,
    or one file per split (``recsys.data.given``).
    """
    if dataset.name not in SOURCE_NAMES:
        raise ConfigError(
            f"unknown dataset '{dataset.name}'",
            setting="dataset",
            hint=f"use one of {', '.join(SOURCE_NAMES)}",
        )
    if split is not None:
        dataset = loader_dataset(dataset, split)
        if split.protocol == GIVEN and given_files(split):
            layout = split_files_layout(dataset, given_files(split))
            names = [n for n in SPLITS if given_files(split).get(n)]
            return Source(dataset, layout, list(layout.interaction_files),
                          dict(zip(names, layout.interaction_files)))
    if dataset.name == "synthetic":
        return Source(dataset, None, list(range(synthetic.n_chunks(dataset.synthetic))))
    layout = detect_layout(dataset)
    return Source(dataset, layout, list(layout.interaction_files))
