"""The built-in default dataset: users with latent topic tastes, items whose text carries their topic.

Everything is a deterministic function of :class:`SyntheticConfig`. Items belong
to a topic (some to a second one), have Zipf-like popularity and English text
written from their topic's words. Users prefer one or two topics (or, for
``popularity_user_fraction`` of them, follow global popularity only, and for
``random_user_fraction`` of them, pick released items uniformly at random), are
active over a sub-window of the time span, and see topic popularity drift over time.
Some items are released late and are cold in a temporal split. When some users
follow popularity or chance, the source has a users table whose ``behaviour``
column (``taste``, ``popularity``, ``random``) makes them an evaluation segment
(``user_behaviour=random`` is a deliberately hard one).

Users are generated in chunks of ``chunk_users``; a chunk is a pure function of
``(cfg, chunk_index)``, so chunks can be made in any order, in parallel, and
10M interactions never need to be in memory at once. The hidden ground truth
(topics, popularity, release times, user tastes) is kept out of the tables and
returned by :func:`item_truth` and :func:`user_truth`.

>>> cfg = SyntheticConfig(n_users=30, n_items=40, n_topics=3,
...                       mean_interactions_per_user=6, chunk_users=10)
>>> n_chunks(cfg), generate_items(cfg).columns
(3, ['item_id', 'title', 'description', 'genres'])
>>> generate_chunk(cfg, 1)["user_id"].unique().sort().to_list()[:2]
['u0000010', 'u0000011']
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import polars as pl

from recsys import storage
from recsys.data.config import SyntheticConfig
from recsys.data.schema import ITEM_ID, RATING, TIMESTAMP, USER_ID, conform_interactions
from recsys.data.synthetic_text import item_texts, max_topics, topic_vocabularies
from recsys.data.synthetic_world import (
    DAY, ChunkEvents, World, build_world, chunk_events, chunk_users, text_rng,
)
from recsys.errors import ConfigError, DataError

_USER_DIGITS, _ITEM_DIGITS = 7, 6


def n_chunks(cfg: SyntheticConfig) -> int:
    """How many user chunks the generator makes.

    >>> n_chunks(SyntheticConfig(n_users=45, chunk_users=20))
    3
    """
    validate_synthetic(cfg)
    return math.ceil(cfg.n_users / cfg.chunk_users)


def generate_items(cfg: SyntheticConfig) -> pl.DataFrame:
    """The item table: ``item_id``, ``title``, ``description``, ``genres`` (``|``-separated).

    >>> items = generate_items(SyntheticConfig(n_items=5, n_topics=2, mean_interactions_per_user=3))
    >>> items["item_id"].to_list()
    ['i000000', 'i000001', 'i000002', 'i000003', 'i000004']
    """
    world = _world(cfg)
    titles, descriptions, genres = item_texts(
        topic_vocabularies(cfg.n_topics), world.primary, world.secondary,
        cfg.text_informative, text_rng(cfg.seed),
    )
    return pl.DataFrame({
        ITEM_ID: _item_ids(cfg), "title": titles, "description": descriptions, "genres": genres,
    })


def item_truth(cfg: SyntheticConfig) -> pl.DataFrame:
    """Hidden item facts: topic, second topic (or null), popularity weight, release time, cold flag.

    >>> truth = item_truth(SyntheticConfig(n_items=200, n_topics=4, cold_item_fraction=0.1))
    >>> int(truth["cold"].sum()), round(truth["popularity"].sum(), 6)
    (20, 1.0)
    """
    world = _world(cfg)
    names = np.array(world.topics + [None], dtype=object)
    return pl.DataFrame({
        ITEM_ID: _item_ids(cfg),
        "topic": names[world.primary].tolist(),
        "secondary_topic": names[world.secondary].tolist(),
        "popularity": world.popularity,
        "release_timestamp": world.release,
        "cold": world.cold,
    }, schema_overrides={"secondary_topic": pl.Utf8})


def user_truth(cfg: SyntheticConfig) -> pl.DataFrame:
    """Hidden user facts: popularity-only and random flags, preferred topics and their shares, active window.

    ``top_topic_share``/``second_topic_share`` are the expected shares of the
    user's events from each preferred topic before drift (they sum to
    ``topic_affinity``); popularity users pick items without regard to them.

    >>> truth = user_truth(SyntheticConfig(n_users=50, popularity_user_fraction=0.5))
    >>> truth.height, 10 < int(truth["popularity_user"].sum()) < 40
    (50, True)
    """
    world = _world(cfg)
    names = np.array(world.topics + [None], dtype=object)
    frames = []
    for k in range(n_chunks(cfg)):
        u = chunk_users(cfg, world, k)
        span = cfg.span_days * DAY
        frames.append(pl.DataFrame({
            "user": np.arange(u.first, u.first + len(u.top)),
            "popularity_user": u.popularity_user,
            "random_user": u.random_user,
            "top_topic": names[u.top].tolist(),
            "second_topic": names[u.second].tolist(),
            "top_topic_share": cfg.topic_affinity * u.top_weight,
            "second_topic_share": np.where(u.second >= 0, cfg.topic_affinity * (1 - u.top_weight), 0.0),
            "active_from": cfg.start_timestamp + (u.active_from * span).astype(np.int64),
            "active_until": cfg.start_timestamp
            + ((u.active_from + u.active_length) * span).astype(np.int64),
            "planned_interactions": u.n_planned,
        }, schema_overrides={"second_topic": pl.Utf8}))
    frame = pl.concat(frames)
    return frame.select(_format_ids("u", "user", _width(cfg.n_users, _USER_DIGITS)).alias(USER_ID),
                        pl.exclude("user"))


def generate_users(cfg: SyntheticConfig) -> pl.DataFrame | None:
    """The users table: ``user_id`` and ``behaviour`` (``taste``, ``popularity`` or ``random``).

    None when every user follows their taste (nothing to tell them apart by).

    >>> users = generate_users(SyntheticConfig(n_users=40, random_user_fraction=0.5))
    >>> users.columns, sorted(users["behaviour"].unique())
    (['user_id', 'behaviour'], ['random', 'taste'])
    >>> generate_users(SyntheticConfig(n_users=40)) is None
    True
    """
    validate_synthetic(cfg)
    if cfg.popularity_user_fraction == 0 and cfg.random_user_fraction == 0:
        return None
    truth = user_truth(cfg)
    behaviour = (pl.when(pl.col("popularity_user")).then(pl.lit("popularity"))
                 .when(pl.col("random_user")).then(pl.lit("random")).otherwise(pl.lit("taste")))
    return truth.select(USER_ID, behaviour.alias("behaviour"))


def generate_chunk(cfg: SyntheticConfig, chunk_index: int) -> pl.DataFrame:
    """Canonical interactions of the users in chunk ``chunk_index``, sorted by user then time.

    >>> cfg = SyntheticConfig(n_users=20, n_items=30, n_topics=3, mean_interactions_per_user=5)
    >>> generate_chunk(cfg, 0).columns
    ['user_id', 'item_id', 'timestamp', 'rating']
    """
    count = n_chunks(cfg)
    if not (isinstance(chunk_index, (int, np.integer)) and 0 <= chunk_index < count):
        raise ConfigError(
            f"chunk index {chunk_index!r} is outside the {count} chunks of this configuration",
            setting="dataset.synthetic.chunk_users", hint=f"ask for a chunk in 0..{count - 1}",
        )
    return _events_frame(cfg, chunk_events(cfg, _world(cfg), int(chunk_index)))


def iter_chunks(cfg: SyntheticConfig) -> Iterator[pl.DataFrame]:
    """Every chunk in order; only one is in memory at a time.

    >>> cfg = SyntheticConfig(n_users=25, n_items=30, n_topics=3, chunk_users=10,
    ...                       mean_interactions_per_user=5)
    >>> [c["user_id"].n_unique() for c in iter_chunks(cfg)]
    [10, 10, 5]
    """
    for k in range(n_chunks(cfg)):
        yield generate_chunk(cfg, k)


def write_synthetic(cfg: SyntheticConfig, out_dir: str | Path) -> dict:
    """Write ``interactions/part-NNNNN.parquet`` (one per chunk) and ``items.parquet`` into ``out_dir``.

    Each file is written under a temporary name and renamed into place; part files
    left from an earlier, larger run are removed. Returns the counts written.

    >>> import tempfile
    >>> cfg = SyntheticConfig(n_users=25, n_items=30, n_topics=3, chunk_users=10,
    ...                       mean_interactions_per_user=5)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     counts = write_synthetic(cfg, d)
    ...     files = sorted(p.name for p in Path(d).rglob("*.parquet"))
    >>> counts["n_chunks"], counts["n_users"], files[-1]
    (3, 25, 'part-00002.parquet')
    """
    world = _world(cfg)
    out = Path(out_dir)
    parts = out / "interactions"
    _make_dir(parts)
    seen_items = np.zeros(cfg.n_items, dtype=bool)
    n_rows = n_users = 0
    written = set()
    for k in range(n_chunks(cfg)):
        events = chunk_events(cfg, world, k)
        path = parts / f"part-{k:05d}.parquet"
        _write_atomic(_events_frame(cfg, events), path)
        written.add(path.name)
        n_rows += len(events.item)
        n_users += len(np.unique(events.user))
        seen_items[events.item] = True
    for stale in parts.glob("part-*.parquet"):
        if stale.name not in written:
            stale.unlink()
    _write_atomic(generate_items(cfg), out / "items.parquet")
    return {"n_interactions": n_rows, "n_users": n_users, "n_items": cfg.n_items,
            "n_items_interacted": int(seen_items.sum()), "n_chunks": len(written)}


def validate_synthetic(cfg: SyntheticConfig) -> None:
    """Raise :class:`ConfigError` naming the first impossible setting.

    >>> try:
    ...     validate_synthetic(SyntheticConfig(n_topics=20, n_items=10))
    ... except ConfigError as err:
    ...     print(err.setting, "|", err.problem)
    dataset.synthetic.n_topics | n_topics (20) is larger than n_items (10)
    """
    c = cfg
    for name in ("n_users", "n_items", "n_topics", "start_timestamp", "span_days", "chunk_users", "seed"):
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(name, f"must be an integer, got {value!r}", "write a whole number")
    for name in ("mean_interactions_per_user", "zipf_exponent", "topic_affinity", "drift",
                 "cold_item_fraction", "popularity_user_fraction", "random_user_fraction"):
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            _fail(name, f"must be a finite number, got {value!r}", "write a number")
    for name in ("text_informative", "rating"):
        if not isinstance(getattr(c, name), bool):
            _fail(name, f"must be true or false, got {getattr(c, name)!r}", "write true or false")
    for name in ("n_users", "n_items", "n_topics", "span_days", "chunk_users"):
        if getattr(c, name) < 1:
            _fail(name, f"must be at least 1, got {getattr(c, name)}", f"set {name} to a positive number")
    for name in ("seed", "start_timestamp", "zipf_exponent", "drift"):
        if getattr(c, name) < 0:
            _fail(name, f"must not be negative, got {getattr(c, name)}", f"set {name} to 0 or more")
    for name in ("topic_affinity", "popularity_user_fraction", "random_user_fraction", "cold_item_fraction"):
        if not 0 <= getattr(c, name) <= 1:
            _fail(name, f"is a fraction and must be in [0, 1], got {getattr(c, name)}",
                  "use a value between 0 and 1")
    if c.n_topics > c.n_items:
        _fail("n_topics", f"n_topics ({c.n_topics}) is larger than n_items ({c.n_items})",
              "use at most as many topics as items")
    if c.n_topics > max_topics():
        _fail("n_topics", f"the generator can make at most {max_topics()} topics, got {c.n_topics}",
              f"use at most {max_topics()} topics")
    if c.mean_interactions_per_user < 3:
        _fail("mean_interactions_per_user", f"must be at least 3 (every user has 3 or more), "
              f"got {c.mean_interactions_per_user}", "set it to 3 or more")
    if c.mean_interactions_per_user > c.n_items:
        _fail("mean_interactions_per_user", f"mean {c.mean_interactions_per_user} is larger than the "
              f"{c.n_items} items a user can interact with", "lower it or raise n_items")
    if _n_cold(c) > c.n_items - c.n_topics:
        _fail("cold_item_fraction", f"{_n_cold(c)} cold items leave fewer than one item per topic "
              f"available from the start ({c.n_items} items, {c.n_topics} topics)",
              "lower cold_item_fraction or raise n_items")


def _fail(name: str, problem: str, hint: str):
    raise ConfigError(problem, setting=f"dataset.synthetic.{name}", hint=hint)


def _n_cold(cfg: SyntheticConfig) -> int:
    return int(round(cfg.cold_item_fraction * cfg.n_items))


def _width(n: int, digits: int) -> int:
    return max(digits, len(str(n - 1)))


def _format_ids(prefix: str, column: str, width: int) -> pl.Expr:
    return pl.format(prefix + "{}", pl.col(column).cast(pl.Utf8).str.zfill(width))


def _item_ids(cfg: SyntheticConfig) -> pl.Series:
    frame = pl.DataFrame({"item": np.arange(cfg.n_items)})
    width = _width(cfg.n_items, _ITEM_DIGITS)
    return frame.select(_format_ids("i", "item", width).alias(ITEM_ID))[ITEM_ID]


def _world(cfg: SyntheticConfig) -> World:
    validate_synthetic(cfg)
    fields = ("n_items", "n_topics", "zipf_exponent", "start_timestamp", "span_days", "drift",
              "cold_item_fraction", "seed")  # the item world depends on these only
    return _cached_world(tuple((name, getattr(cfg, name)) for name in fields))


@lru_cache(maxsize=2)
def _cached_world(settings: tuple) -> World:
    return build_world(SyntheticConfig(**dict(settings)))


def _events_frame(cfg: SyntheticConfig, events: ChunkEvents) -> pl.DataFrame:
    rating = (pl.lit(None, dtype=pl.Float32) if events.rating is None
              else pl.Series(RATING, events.rating, dtype=pl.Float32))
    frame = pl.DataFrame({"user": events.user, "item": events.item, TIMESTAMP: events.timestamp})
    return conform_interactions(frame.with_columns(
        _format_ids("u", "user", _width(cfg.n_users, _USER_DIGITS)).alias(USER_ID),
        _format_ids("i", "item", _width(cfg.n_items, _ITEM_DIGITS)).alias(ITEM_ID),
        rating.alias(RATING),
    ))


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the output directory: {err}", file=str(path),
                        hint="choose a writable location") from None


def _write_atomic(frame: pl.DataFrame, path: Path) -> None:
    """Write under a temporary name in the same directory, then rename into place (:func:`recsys.storage.publish_atomic`)."""
    try:
        storage.publish_atomic(path, frame.write_parquet)
    except OSError as err:
        raise DataError(f"cannot write the file: {err}", file=str(path),
                        hint="check that the directory is writable and has free space") from None
