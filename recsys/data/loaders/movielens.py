"""MovieLens, as GroupLens publishes it: 100K, 1M, 10M and the CSV releases (latest, 25M, 32M).

=========== ================== ========================== ============ ========
format      interactions       items                      users        encoding
=========== ================== ========================== ============ ========
ml-100k     u.data (tab)       u.item (``|``, genre flags) u.user (``|``) latin-1
ml-1m       ratings.dat (::)   movies.dat (::)            users.dat    latin-1
ml-10m      ratings.dat (::)   movies.dat + tags.dat      (none)       utf-8, latin-1 lines tolerated
ml-csv      ratings.csv        movies.csv + tags.csv      (none)       utf-8
=========== ================== ========================== ============ ========

Items get ``title``, ``genres`` (``Action|Comedy``) and, where the release has tags,
``tags``: each movie's distinct tags (case-insensitively), most used first, joined by ``|``.

>>> import tempfile, pathlib
>>> from recsys.data.config import DatasetConfig
>>> from recsys.data.loaders.layout import detect_layout
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "ratings.dat").write_bytes(b"1::10::4::978300760\\n")
>>> _ = (root / "movies.dat").write_bytes("10::Amélie (2001)::Comedy|Romance\\n".encode("latin-1"))
>>> cfg = DatasetConfig(name="movielens", path=str(root))
>>> layout = detect_layout(cfg)
>>> read_interactions(layout, layout.interaction_files[0], cfg).row(0)
('1', '10', 978300760, 4.0)
>>> read_items(layout, cfg).row(0)
('10', 'Amélie (2001)', 'Comedy|Romance')
"""

from __future__ import annotations

import polars as pl

from recsys.data.config import DatasetConfig
from recsys.data.loaders import files
from recsys.data.loaders.layout import SourceLayout
from recsys.data.loaders.parse import (LINE, first_per_item, read_delimited, require_columns, require_rows,
                                       require_values, strip_cr, to_number, to_seconds)
from recsys.data.schema import conform_interactions
from recsys.errors import DataError

GENRES_100K = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
               "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
               "Romance", "Sci-Fi", "Thriller", "War", "Western")
_CANONICAL = ["user_id", "item_id", "rating", "timestamp"]
_CSV_RATINGS = {"user_id": "userId", "item_id": "movieId", "rating": "rating", "timestamp": "timestamp"}
_ENCODING = {"ml-100k": "latin-1", "ml-1m": "latin-1", "ml-10m": "utf-8-robust", "ml-csv": "utf-8"}
_HINT_ORIGINAL = "use the publisher's original file (re-download it if it was edited)"


def read_interactions(layout: SourceLayout, file: str, cfg: DatasetConfig) -> pl.DataFrame:
    """The ratings of one MovieLens file as the canonical interaction table."""
    data = _utf8(files.read_bytes(file), layout.format, file)
    if layout.format == "ml-csv":
        frame = read_delimited(data, file, separator=",")
        require_columns(list(_CSV_RATINGS.values()), [c for c in frame.columns if c != LINE], file,
                        hint=_HINT_ORIGINAL)
        frame = frame.rename({source: name for name, source in _CSV_RATINGS.items()})
    else:
        separator = "\t" if layout.format == "ml-100k" else "::"
        frame = read_delimited(data, file, separator=separator, names=_CANONICAL)
    require_rows(frame, file)
    require_values(frame, _CANONICAL, file)
    frame = frame.with_columns(
        to_number(frame, "rating", pl.Float32, file),
        to_seconds(frame, "timestamp", file),
    )
    return conform_interactions(frame)


def read_items(layout: SourceLayout, cfg: DatasetConfig) -> pl.DataFrame:
    """One row per movie: ``item_id``, ``title``, ``genres`` and (when tags exist) ``tags``."""
    file = layout.item_files[0]
    data = _utf8(files.read_bytes(file), layout.format, file)
    if layout.format == "ml-100k":
        items = _items_100k(data, file, layout.extra_files.get("genres", []))
    elif layout.format == "ml-csv":
        items = read_delimited(data, file, separator=",", quoting=True)
        require_columns(["movieId", "title", "genres"], [c for c in items.columns if c != LINE], file,
                        hint=_HINT_ORIGINAL)
        items = items.rename({"movieId": "item_id"})
    else:
        items = read_delimited(data, file, separator="::", names=["item_id", "title", "genres"])
    require_values(items, ["item_id"], file)
    items = first_per_item(strip_cr(items.select("item_id", "title", "genres")), file)
    for tags_file in layout.extra_files.get("tags", []):
        tags = _read_tags(tags_file, layout.format)
        items = items.join(tags, on="item_id", how="left", maintain_order="left")
    return items


def read_users(layout: SourceLayout, cfg: DatasetConfig) -> pl.DataFrame | None:
    """User attributes (``gender``, ``age``, ``occupation``, ``zip``) for 100K and 1M, else None."""
    if not layout.user_files:
        return None
    file = layout.user_files[0]
    data = _utf8(files.read_bytes(file), layout.format, file)
    if layout.format == "ml-100k":
        names = ["user_id", "age", "gender", "occupation", "zip"]
        users = read_delimited(data, file, separator="|", names=names)
    else:
        names = ["user_id", "gender", "age", "occupation", "zip"]
        users = read_delimited(data, file, separator="::", names=names)
    require_values(users, ["user_id"], file)
    users = users.with_columns(to_number(users, "age", pl.Int64, file))
    return strip_cr(users.select("user_id", "gender", "age", "occupation", "zip"))


def _utf8(data: bytes, fmt: str, file: str) -> bytes:
    """``data`` as UTF-8 bytes (polars reads UTF-8 only), decoded with the release's encoding."""
    if data.isascii() or _ENCODING[fmt] == "utf-8":
        return data
    return files.decode(data, _ENCODING[fmt], file).encode("utf-8")


def _genre_names(genre_files: list[str], file: str) -> tuple[str, ...]:
    if not genre_files:
        return GENRES_100K
    genre_file = genre_files[0]
    data = _utf8(files.read_bytes(genre_file), "ml-100k", genre_file)
    frame = read_delimited(data, genre_file, separator="|", names=["genre", "index"])
    frame = frame.with_columns(to_number(frame, "index", pl.Int64, genre_file)).sort("index")
    if frame.height != len(GENRES_100K):
        raise DataError(f"lists {frame.height} genres; {files.basename(file)} has {len(GENRES_100K)} genre flags",
                        file=genre_file, hint=_HINT_ORIGINAL)
    return tuple(frame["genre"].to_list())


def _items_100k(data: bytes, file: str, genre_files: list[str]) -> pl.DataFrame:
    genres = _genre_names(genre_files, file)
    flags = [f"flag_{i}" for i in range(len(genres))]
    names = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *flags]
    items = read_delimited(data, file, separator="|", names=names)
    require_values(items, ["item_id", flags[-1]], file, what="field (u.item lines have 24 fields)")
    for flag, genre in zip(flags, genres):
        bad = items.filter(~pl.col(flag).is_in(["0", "1"]))
        if bad.height:
            raise DataError(f"{bad.height} genre flag(s) are not 0 or 1, e.g. {bad[flag][0]!r} at line "
                            f"{bad[LINE][0]}", file=file, column=f"{genre} flag", hint=_HINT_ORIGINAL)
    joined = pl.concat_str([pl.when(pl.col(flag) == "1").then(pl.lit(genre)) for flag, genre in zip(flags, genres)],
                           separator="|", ignore_nulls=True)
    return items.with_columns(genres=pl.when(joined != "").then(joined))


def _read_tags(file: str, fmt: str) -> pl.DataFrame:
    """Each movie's distinct tags (case-insensitive; most used first, then alphabetical), joined by ``|``."""
    data = _utf8(files.read_bytes(file), fmt, file)
    if fmt == "ml-csv":
        tags = read_delimited(data, file, separator=",", quoting=True)
        require_columns(["movieId", "tag"], [c for c in tags.columns if c != LINE], file, hint=_HINT_ORIGINAL)
        tags = tags.rename({"movieId": "item_id"})
    else:
        tags = read_delimited(data, file, separator="::", names=["user_id", "item_id", "tag", "timestamp"])
    tags = strip_cr(tags.select("item_id", "tag")).with_columns(pl.col("tag").str.strip_chars())
    tags = tags.filter(pl.col("item_id").is_not_null() & (pl.col("tag").str.len_chars() > 0))
    counted = (tags.with_columns(key=pl.col("tag").str.to_lowercase())
               .sort("item_id", "tag")
               .group_by("item_id", "key", maintain_order=True)
               .agg(pl.col("tag").first(), uses=pl.len()))
    return (counted.sort(["item_id", "uses", "key"], descending=[False, True, False])
            .group_by("item_id", maintain_order=True)
            .agg(tags=pl.col("tag").str.join("|")))
