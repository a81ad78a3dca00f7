"""Which publisher format a directory holds, and which of its files to read.

``dataset.format: auto`` looks at the file names present (in ``dataset.path`` or one
folder below it, as an unzipped archive often adds one); an explicit format is
checked against the files it needs.

>>> import tempfile, pathlib
>>> from recsys.data.config import DatasetConfig
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> for name in ("ratings.dat", "movies.dat", "users.dat"):
...     _ = (root / name).write_text("")
>>> layout = detect_layout(DatasetConfig(name="movielens", path=str(root)))
>>> layout.format, [pathlib.Path(f).name for f in layout.interaction_files]
('ml-1m', ['ratings.dat'])
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field

import pyarrow.fs as pafs

from recsys.data.config import DatasetConfig
from recsys.data.loaders import files
from recsys.errors import ConfigError, DataError

FORMATS: dict[str, tuple[str, ...]] = {
    "movielens": ("ml-100k", "ml-1m", "ml-10m", "ml-csv"),
    "amazon": ("amazon-2018", "amazon-2023"),
    "table": ("table-parquet", "table-csv"),
}

# format -> (interaction file, item file, user file or None, {extra kind: file})
_MOVIELENS_FILES: dict[str, tuple[str, str, str | None, dict[str, str]]] = {
    "ml-100k": ("u.data", "u.item", "u.user", {"genres": "u.genre"}),
    "ml-1m": ("ratings.dat", "movies.dat", "users.dat", {}),
    "ml-10m": ("ratings.dat", "movies.dat", None, {"tags": "tags.dat"}),
    "ml-csv": ("ratings.csv", "movies.csv", None, {"tags": "tags.csv"}),
}
_MOVIELENS_LOOKED_FOR = ("u.data + u.item (100K), ratings.dat + movies.dat (1M, 10M), "
                         "ratings.csv + movies.csv (latest, 25M, 32M)")
_AMAZON_PATTERNS = {
    "amazon-2018": re.compile(r"^(?P<meta>meta_)?(?P<stem>.+?)\.json(\.gz)?$"),
    "amazon-2023": re.compile(r"^(?P<meta>meta_)?(?P<stem>.+?)\.jsonl(\.gz)?$"),
}
_AMAZON_LOOKED_FOR = ("reviews *.json.gz / *_5.json.gz with meta_*.json.gz (2018), "
                      "or reviews *.jsonl(.gz) with meta_*.jsonl(.gz) (2023)")
TABLE_EXTENSIONS = {".parquet": "table-parquet", ".pq": "table-parquet", ".parq": "table-parquet",
                    ".csv": "table-csv", ".tsv": "table-csv", ".txt": "table-csv",
                    # RecBole's atomic files (tab-separated, headers typed like user_id:token)
                    ".inter": "table-csv", ".item": "table-csv", ".user": "table-csv"}
ATOMIC_EXTENSIONS = (".inter", ".item", ".user")


@dataclass
class SourceLayout:
    """The files of one source: each interaction file can be parsed on its own."""

    name: str
    format: str
    root: str | None
    interaction_files: list[str]
    item_files: list[str] = field(default_factory=list)
    user_files: list[str] = field(default_factory=list)
    extra_files: dict[str, list[str]] = field(default_factory=dict)

    def all_files(self) -> list[str]:
        """Every file the source reads, interactions first."""
        extras = [f for group in self.extra_files.values() for f in group]
        return [*self.interaction_files, *self.item_files, *self.user_files, *extras]


def detect_layout(cfg: DatasetConfig) -> SourceLayout:
    """The layout of ``cfg``'s source: detected when ``cfg.format`` is ``auto``, checked otherwise."""
    if cfg.name not in FORMATS:
        raise ConfigError(f"'{cfg.name}' is not a file source; expected one of {', '.join(FORMATS)}",
                          setting="dataset.name",
                          hint="use dataset=movielens|amazon|table (synthetic data has no files to load)")
    if cfg.format != "auto" and cfg.format not in FORMATS[cfg.name]:
        raise ConfigError(f"format '{cfg.format}' does not belong to dataset '{cfg.name}'; "
                          f"expected auto or one of {', '.join(FORMATS[cfg.name])}",
                          setting="dataset.format", hint="set dataset.format=auto to detect it from the files")
    if cfg.name == "table":
        return _table_layout(cfg)
    root = _source_directory(cfg)
    folders = _Folders(root)
    if cfg.name == "movielens":
        return _movielens_layout(root, folders, cfg.format)
    return _amazon_layout(root, folders, cfg.format)


def _source_directory(cfg: DatasetConfig) -> str:
    if not cfg.path:
        raise ConfigError(f"dataset '{cfg.name}' needs the folder holding its files", setting="dataset.path",
                          hint=f"pass dataset.path=DIR (a local folder or a URI such as s3://bucket/{cfg.name})")
    kind = files.file_type(cfg.path)
    if kind == pafs.FileType.NotFound:
        raise DataError("the dataset folder does not exist", file=cfg.path,
                        hint="check dataset.path (relative paths are resolved from the working directory)")
    if kind != pafs.FileType.Directory:
        raise DataError("dataset.path is a file, expected the folder holding the publisher's files",
                        file=cfg.path, hint="point dataset.path at the unzipped folder")
    return cfg.path


class _Folders:
    """(folder location, file names) for the root folder, then each folder directly under it.

    Subfolders are listed only when iteration reaches them; ``seen`` keeps what was listed.
    """

    def __init__(self, root: str) -> None:
        self.entries = files.list_files(root)
        if not self.entries:
            raise DataError("the dataset folder is empty", file=root,
                            hint="download and unzip the dataset into this folder")
        self.root = root
        self.seen: list[tuple[str, list[str]]] = []

    def __iter__(self):
        for location, entries in [(self.root, self.entries)] + [(e.location, None) for e in self.entries
                                                                  if e.name.endswith("/")]:
            entries = files.list_files(location) if entries is None else entries
            self.seen.append((location, [e.name for e in entries if not e.name.endswith("/")]))
            yield self.seen[-1]


def _found(folders: _Folders) -> str:
    names = [e.name for e in folders.entries]
    return ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") or "(no files)"


def _movielens_layout(root: str, folders, fmt: str) -> SourceLayout:
    for folder, names in folders:
        present = set(names)
        if fmt == "auto":
            candidates = []
            if "u.data" in present:
                candidates.append("ml-100k")
            if "ratings.dat" in present:
                candidates.append("ml-1m" if "users.dat" in present else "ml-10m")
            if "ratings.csv" in present:
                candidates.append("ml-csv")
            if not candidates:
                continue
            if len(candidates) > 1:
                raise DataError(f"the folder holds files of several MovieLens formats ({', '.join(candidates)})",
                                file=folder, hint=f"set dataset.format to one of {', '.join(candidates)}")
            chosen = candidates[0]
        elif _MOVIELENS_FILES[fmt][0] in present:
            chosen = fmt
        else:
            continue
        ratings, movies, users, extras = _MOVIELENS_FILES[chosen]
        if movies not in present:
            raise DataError(f"found {ratings} but not {movies}, which holds the item titles of format {chosen}",
                            file=folder, hint=f"put {movies} from the same archive beside {ratings}")
        return SourceLayout(
            name="movielens", format=chosen, root=folder,
            interaction_files=[files.join(folder, ratings)],
            item_files=[files.join(folder, movies)],
            user_files=[files.join(folder, users)] if users and users in present else [],
            extra_files={kind: [files.join(folder, name)] for kind, name in extras.items() if name in present},
        )
    if fmt == "auto":
        raise DataError(f"no MovieLens files found; looked for {_MOVIELENS_LOOKED_FOR} in this folder "
                        f"and the folders directly under it; found: {_found(folders)}", file=root,
                        hint="point dataset.path at the unzipped MovieLens folder, "
                        "or use dataset=table with a column mapping for other files")
    needed = " and ".join(n for n in _MOVIELENS_FILES[fmt][:2])
    raise DataError(f"dataset.format={fmt} needs {needed}, which are missing; found: {_found(folders)}",
                    file=root, hint="point dataset.path at the right folder or set dataset.format=auto")


def _amazon_layout(root: str, folders, fmt: str) -> SourceLayout:
    for folder, names in folders:
        by_format = {f: _amazon_files(names, f) for f in _AMAZON_PATTERNS}
        with_reviews = [f for f, (reviews, _) in by_format.items() if reviews]
        if fmt != "auto":
            with_reviews = [f for f in with_reviews if f == fmt]
        if not with_reviews:
            continue
        if len(with_reviews) > 1:
            raise DataError("the folder holds reviews of both Amazon 2018 (.json) and 2023 (.jsonl)",
                            file=folder, hint="set dataset.format=amazon-2018 or amazon-2023, "
                            "or keep one release per folder")
        chosen = with_reviews[0]
        reviews, meta = by_format[chosen]
        _check_overlap(folder, reviews)
        return SourceLayout(
            name="amazon", format=chosen, root=folder,
            interaction_files=[files.join(folder, n) for n in reviews],
            item_files=[files.join(folder, n) for n in meta],
        )
    wanted = _AMAZON_LOOKED_FOR if fmt == "auto" else f"the review files of dataset.format={fmt}"
    raise DataError(f"no Amazon review files found; looked for {wanted} in this folder and the folders "
                    f"directly under it; found: {_found(folders)}", file=root,
                    hint="point dataset.path at the folder of the downloaded files (keep their original names)")


def _amazon_files(names: list[str], fmt: str) -> tuple[list[str], list[str]]:
    reviews, meta = [], []
    for name in names:
        match = _AMAZON_PATTERNS[fmt].match(name)
        if match:
            (meta if match.group("meta") else reviews).append(name)
    return sorted(reviews), sorted(meta)


def _check_overlap(folder: str, reviews: list[str]) -> None:
    seen: dict[str, str] = {}
    for name in reviews:
        stem = re.sub(r"(_5)?\.jsonl?(\.gz)?$", "", name)
        if stem in seen:
            raise DataError(f"{seen[stem]} and {name} hold reviews of the same category "
                            "(a _5 file is the 5-core subset of the full file); loading both would count "
                            "reviews twice", file=folder, hint="keep only one of them in the folder")
        seen[stem] = name


def _table_layout(cfg: DatasetConfig) -> SourceLayout:
    if not cfg.interactions:
        raise ConfigError("dataset=table needs the interactions file", setting="dataset.interactions",
                          hint="set dataset.interactions=FILE (Parquet or CSV; a folder or glob of them also works)")
    interactions = _table_files(_locate(cfg.path, cfg.interactions), "dataset.interactions")
    kinds = {table_format(f) for f in interactions}
    if cfg.format != "auto":
        chosen = cfg.format
    elif len(kinds) == 1 and None not in kinds:
        chosen = kinds.pop()
    else:
        shown = ", ".join(files.basename(f) for f in interactions[:5])
        raise DataError(f"cannot tell Parquet from CSV by the file extension ({shown})",
                        file=cfg.interactions,
                        hint="use .parquet or .csv names, or set dataset.format=table-parquet|table-csv")
    item_files = [_single_file(_locate(cfg.path, cfg.items), "dataset.items")] if cfg.items else []
    user_files = [_single_file(_locate(cfg.path, cfg.users), "dataset.users")] if cfg.users else []
    return SourceLayout(name="table", format=chosen, root=cfg.path, interaction_files=interactions,
                        item_files=item_files, user_files=user_files)


def split_files_layout(cfg: DatasetConfig, split_files: dict[str, str]) -> SourceLayout:
    """A table layout whose interaction files are a given split's files (``split.files``), in split order.

    Relative paths are resolved from ``dataset.path`` when it is set; all files must
    share one format (by extension, or ``dataset.format``).
    """
    located = [_single_file(_locate(cfg.path, split_files[name]), f"split.files.{name}")
               for name in ("train", "val", "test") if split_files.get(name)]
    kinds = {table_format(f) for f in located}
    if cfg.format != "auto":
        chosen = cfg.format
    elif len(kinds) == 1 and None not in kinds:
        chosen = kinds.pop()
    else:
        shown = ", ".join(files.basename(f) for f in located)
        raise DataError(f"the split files must share one format, told by their extension ({shown})",
                        setting="split.files",
                        hint="use .parquet, .csv/.tsv or RecBole .inter files for all of them, "
                        "or set dataset.format=table-parquet|table-csv")
    item_files = [_single_file(_locate(cfg.path, cfg.items), "dataset.items")] if cfg.items else []
    user_files = [_single_file(_locate(cfg.path, cfg.users), "dataset.users")] if cfg.users else []
    return SourceLayout(name="table", format=chosen, root=cfg.path, interaction_files=located,
                        item_files=item_files, user_files=user_files)


def table_format(location: str) -> str | None:
    """``table-parquet`` or ``table-csv`` from a file name's extension (``.gz`` ignored), else None.

    >>> table_format("events.csv.gz"), table_format("part-0.parquet"), table_format("x.bin")
    ('table-csv', 'table-parquet', None)
    """
    name = files.basename(location).lower().removesuffix(".gz")
    return TABLE_EXTENSIONS.get(os.path.splitext(name)[1])


def _locate(root: str | None, location: str) -> str:
    if root and not files.is_uri(location) and not os.path.isabs(location):
        return files.join(root, location)
    return location


def _table_files(location: str, setting: str) -> list[str]:
    name = files.basename(location)
    if any(c in name for c in "*?["):
        folder = location[: location.rfind(name)].rstrip("/") or "."
        matches = [e.location for e in _listing(folder, setting) if fnmatch.fnmatch(e.name, name)]
        if not matches:
            raise DataError(f"no file matches '{name}'", file=folder, setting=setting,
                            hint="check the pattern and the folder")
        return matches
    kind = files.file_type(location)
    if kind == pafs.FileType.Directory:
        entries = files.list_files(location, recursive=True)
        found = [e.location for e in entries
                 if table_format(e.name) and not files.basename(e.name).startswith(("_", "."))]
        if not found:
            raise DataError("the folder holds no Parquet or CSV files", file=location, setting=setting,
                            hint="point the setting at a .parquet/.csv file or a folder of them")
        return found
    if kind == pafs.FileType.NotFound:
        raise DataError("file not found", file=location, setting=setting,
                        hint="check the path (relative paths are resolved from dataset.path when it is set)")
    return [location]


def _listing(folder: str, setting: str) -> list[files.FileEntry]:
    if files.file_type(folder) != pafs.FileType.Directory:
        raise DataError("folder not found", file=folder, setting=setting, hint="check the path")
    return [e for e in files.list_files(folder) if not e.name.endswith("/")]


def _single_file(location: str, setting: str) -> str:
    found = _table_files(location, setting)
    if len(found) != 1:
        raise DataError(f"expected one file, found {len(found)}", file=location, setting=setting,
                        hint="name a single Parquet or CSV file")
    return found[0]
