"""Sampling engine of the synthetic generator: the item world, users of a chunk, their events.

All sampling is vectorised with NumPy. Items are drawn by inverse-CDF search
over one flat cumulative weight array whose segments are the topics (plus one
"global" segment for popularity users); inside a segment entries are sorted by
release time, so the items available at a time bucket are a prefix of the
segment and cold items can never be drawn before their release.

>>> from recsys.data.config import SyntheticConfig
>>> cfg = SyntheticConfig(n_users=10, n_items=20, n_topics=2, mean_interactions_per_user=4)
>>> world = build_world(cfg)
>>> world.drift.shape, len(world.topics)
((2, 100), 2)
>>> events = chunk_events(cfg, world, 0)
>>> bool((events.timestamp >= world.release[events.item]).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.data.config import SyntheticConfig
from recsys.data.synthetic_text import topic_vocabularies

N_TIME_BUCKETS = 100            # time resolution of drift and item availability
DAY = 86_400
_SECONDARY_TOPIC_SHARE = 0.25   # items with a second topic
_SECONDARY_WEIGHT = 0.5         # an item's weight inside its second topic, relative to its first
_TWO_FAVOURITES_SHARE = 0.5     # users who prefer two topics rather than one
_RESAMPLE_ROUNDS = 6            # redraws of a user's repeated item before dropping the event
_COLD_RELEASE = (0.90, 0.98)    # cold items are released in this part of the span
_NEW_RELEASE_BOOST = 4.0       # weight multiplier of late-released items
_OLD_RELEASE_DAYS = 730         # other items were released up to this long before the span
_ACTIVE_LENGTH = (0.1, 0.6)     # a user's active window, as a share of the span
_ITEMS, _TEXT, _USERS, _EVENTS = range(4)  # independent random streams


def rng_for(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    """The random generator of one stream (items, text, users, events) and chunk."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))


def text_rng(seed: int) -> np.random.Generator:
    """The random generator of item text, independent of every other stream."""
    return rng_for(seed, _TEXT)


@dataclass(frozen=True)
class World:
    """Everything about items and time that every chunk shares."""

    topics: list[str]
    primary: np.ndarray          # (I,) topic of each item
    secondary: np.ndarray        # (I,) second topic, -1 for none
    popularity: np.ndarray       # (I,) global popularity weight, sums to 1
    release: np.ndarray          # (I,) release timestamp
    cold: np.ndarray             # (I,) released late in the span
    bucket_starts: np.ndarray    # (B,) first timestamp of each time bucket
    drift: np.ndarray            # (T, B) multiplier of each topic's popularity over time
    topic_cdf: np.ndarray        # (B, T) cumulative background topic distribution per bucket
    entry_item: np.ndarray       # (E,) item of each sampling entry, grouped by segment
    entry_cdf: np.ndarray        # (E + 1,) cumulative entry weight, starting at 0
    segment_start: np.ndarray    # (T + 1,) first entry of each segment; segment T is global
    available_end: np.ndarray    # (T + 1, B) end of the entries released by each bucket start
    release_order: np.ndarray    # (I,) items by release time (random users draw a prefix uniformly)
    released: np.ndarray         # (B,) items released by each bucket start


def build_world(cfg: SyntheticConfig) -> World:
    """Items' topics, popularity, release times, and the drifting topic popularity."""
    rng = rng_for(cfg.seed, _ITEMS)
    n, t = cfg.n_items, cfg.n_topics
    primary = rng.permutation(np.arange(n) % t).astype(np.int32)
    has_second = (rng.random(n) < _SECONDARY_TOPIC_SHARE) & (t > 1)
    secondary = (primary + 1 + rng.integers(0, max(t - 1, 1), n)) % t
    secondary = np.where(has_second, secondary, -1).astype(np.int32)

    # Zipf across topics (milder) and within each topic: weight = rank^-exponent.
    by_topic = np.lexsort((rng.random(n), primary))
    topic_first = np.searchsorted(primary[by_topic], np.arange(t))
    rank = np.empty(n, dtype=np.int64)
    rank[by_topic] = np.arange(n) - topic_first[primary[by_topic]]
    topic_weight = (rng.permutation(t) + 1.0) ** -(cfg.zipf_exponent / 2)
    topic_weight /= topic_weight.sum()

    # Late releases, never the most popular item of a topic, so every topic is available from the
    # start; like real new releases they draw extra attention once out.
    span = cfg.span_days * DAY
    cold = np.zeros(n, dtype=bool)
    n_cold = int(round(cfg.cold_item_fraction * n))
    cold[rng.permutation(np.flatnonzero(rank > 0))[:n_cold]] = True
    within = (rank + 1.0) ** -cfg.zipf_exponent * np.where(cold, _NEW_RELEASE_BOOST, 1.0)
    within /= np.bincount(primary, weights=within, minlength=t)[primary]
    popularity = topic_weight[primary] * within
    late = cfg.start_timestamp + (rng.uniform(*_COLD_RELEASE, n) * span).astype(np.int64)
    old = cfg.start_timestamp - rng.integers(0, _OLD_RELEASE_DAYS * DAY, n)
    release = np.where(cold, late, old)

    buckets = np.arange(N_TIME_BUCKETS)
    bucket_starts = cfg.start_timestamp + (buckets * span) // N_TIME_BUCKETS
    x = (buckets + 0.5) / N_TIME_BUCKETS
    slope, phase = rng.uniform(-1, 1, t), rng.random(t)
    drift = np.exp(cfg.drift * (slope[:, None] * (2 * x - 1)
                                + 0.5 * np.sin(2 * np.pi * (x + phase[:, None]))))
    topic_cdf = np.cumsum(topic_weight[:, None] * drift, axis=0).T
    topic_cdf /= topic_cdf[:, -1:]

    segment = np.concatenate([primary, secondary[has_second], np.full(n, t)])
    entry_item = np.concatenate([np.arange(n), np.flatnonzero(has_second), np.arange(n)])
    weight = np.concatenate([within, _SECONDARY_WEIGHT * within[has_second], popularity])
    order = np.lexsort((release[entry_item], segment))
    segment, entry_item, weight = segment[order], entry_item[order], weight[order]
    segment_start = np.searchsorted(segment, np.arange(t + 2))
    entry_release = release[entry_item]
    available_end = np.stack([
        segment_start[s] + np.searchsorted(
            entry_release[segment_start[s]:segment_start[s + 1]], bucket_starts, side="right")
        for s in range(t + 1)
    ])
    return World(
        topics=[v.name for v in topic_vocabularies(t)], primary=primary, secondary=secondary,
        popularity=popularity, release=release, cold=cold, bucket_starts=bucket_starts,
        drift=drift, topic_cdf=topic_cdf, entry_item=entry_item.astype(np.int32),
        entry_cdf=np.concatenate([[0.0], np.cumsum(weight)]),
        segment_start=segment_start[: t + 1], available_end=available_end,
        release_order=np.argsort(release, kind="stable").astype(np.int32),
        released=np.searchsorted(np.sort(release), bucket_starts, side="right"),
    )


@dataclass(frozen=True)
class ChunkUsers:
    """The users of one chunk (index ``first`` onwards) and their hidden tastes."""

    first: int
    popularity_user: np.ndarray  # (U,) picks by global popularity only
    random_user: np.ndarray      # (U,) picks released items uniformly (never also a popularity user)
    active_from: np.ndarray      # (U,) start of the active window, share of the span
    active_length: np.ndarray    # (U,) length of the active window, share of the span
    top: np.ndarray              # (U,) preferred topic
    second: np.ndarray           # (U,) second preferred topic, -1 for none
    top_weight: np.ndarray       # (U,) share of the top topic among the preferred ones
    rating_bias: np.ndarray      # (U,) how generously the user rates
    n_planned: np.ndarray        # (U,) events drawn before dropping repeats


def chunk_users(cfg: SyntheticConfig, world: World, chunk_index: int) -> ChunkUsers:
    """Users of one chunk; preferred topics follow topic popularity mid-way through their active time."""
    rng = rng_for(cfg.seed, _USERS, chunk_index)
    first = chunk_index * cfg.chunk_users
    u = min(cfg.n_users, first + cfg.chunk_users) - first
    t = cfg.n_topics
    popularity_user = rng.random(u) < cfg.popularity_user_fraction
    active_length = rng.uniform(*_ACTIVE_LENGTH, u)
    active_from = rng.random(u) * (1 - active_length)
    mid_bucket = ((active_from + active_length / 2) * N_TIME_BUCKETS).astype(np.int64)
    top = _inverse_cdf_rows(world.topic_cdf, mid_bucket, rng.random(u))
    second = np.full(u, -1, dtype=np.int64)
    wants_two = rng.random(u) < _TWO_FAVOURITES_SHARE
    if t > 1:
        for _ in range(3):  # draw again where the second equals the first
            draw = _inverse_cdf_rows(world.topic_cdf, mid_bucket, rng.random(u))
            second = np.where((second < 0) & (draw != top), draw, second)
        fallback = (top + 1 + rng.integers(0, t - 1, u)) % t
        second = np.where(wants_two, np.where(second < 0, fallback, second), -1)
    split = rng.beta(2.0, 2.0, u)
    top_weight = np.where(second >= 0, np.maximum(split, 1 - split), 1.0)
    extra_mean = cfg.mean_interactions_per_user - 3
    extra = rng.lognormal(np.log(max(extra_mean, 1e-9)) - 0.5, 1.0, u)
    n_planned = np.minimum(3 + np.rint(extra).astype(np.int64), cfg.n_items)
    rating_bias = rng.normal(0.0, 0.4, u)
    # drawn last, so settings without random users give the same users as before the option existed
    random_user = (rng.random(u) < cfg.random_user_fraction) & ~popularity_user
    return ChunkUsers(first, popularity_user, random_user, active_from, active_length, top,
                      second, top_weight, rating_bias, n_planned)


@dataclass(frozen=True)
class ChunkEvents:
    """One chunk's interactions as arrays, sorted by user then time."""

    user: np.ndarray       # (N,) global user index
    item: np.ndarray       # (N,) item index
    timestamp: np.ndarray  # (N,) seconds
    rating: np.ndarray | None


def chunk_events(cfg: SyntheticConfig, world: World, chunk_index: int) -> ChunkEvents:
    """Draw the interactions of one chunk's users: time, topic, item, rating."""
    users = chunk_users(cfg, world, chunk_index)
    rng = rng_for(cfg.seed, _EVENTS, chunk_index)
    user = np.repeat(np.arange(len(users.top)), users.n_planned)
    n = len(user)
    share = users.active_from[user] + rng.random(n) * users.active_length[user]
    timestamp = cfg.start_timestamp + (share * cfg.span_days * DAY).astype(np.int64)
    bucket = np.searchsorted(world.bucket_starts, timestamp, side="right") - 1

    item = np.empty(n, dtype=np.int32)
    redo = np.arange(n)
    for _ in range(_RESAMPLE_ROUNDS):
        item[redo] = _draw_items(cfg, world, users, user[redo], bucket[redo], rng)
        redo = _repeats(user, item, cfg.n_items)
        if redo.size == 0:
            break
    keep = np.ones(n, dtype=bool)
    keep[redo] = False
    user, item, timestamp = user[keep], item[keep], timestamp[keep]

    rating = None
    if cfg.rating:
        likes = (world.primary[item] == users.top[user]) | (world.primary[item] == users.second[user])
        likes_second = (world.secondary[item] >= 0) & (
            (world.secondary[item] == users.top[user]) | (world.secondary[item] == users.second[user]))
        mean = 2.6 + 1.4 * likes + 0.7 * (likes_second & ~likes) + users.rating_bias[user]
        rating = np.clip(np.rint(mean + rng.normal(0.0, 0.9, len(item))), 1, 5).astype(np.float32)
    order = np.lexsort((timestamp, user))
    return ChunkEvents(
        user=users.first + user[order].astype(np.int64), item=item[order],
        timestamp=timestamp[order], rating=None if rating is None else rating[order],
    )


def _draw_items(cfg, world: World, users: ChunkUsers, user, bucket, rng) -> np.ndarray:
    """One item per event: a topic (preferred or background), then an item of that topic."""
    n = len(user)
    background = _inverse_cdf_rows(world.topic_cdf, bucket, rng.random(n))
    top, second = users.top[user], users.second[user]
    top_mass = users.top_weight[user] * world.drift[top, bucket]
    second_mass = np.where(second >= 0, (1 - users.top_weight[user]) * world.drift[second, bucket], 0.0)
    preferred = np.where(rng.random(n) * (top_mass + second_mass) < top_mass, top, second)
    topic = np.where(rng.random(n) < cfg.topic_affinity, preferred, background)
    segment = np.where(users.popularity_user[user], cfg.n_topics, topic)
    start = world.segment_start[segment]
    end = world.available_end[segment, bucket]
    low, high = world.entry_cdf[start], world.entry_cdf[end]
    position = np.searchsorted(world.entry_cdf, low + rng.random(n) * (high - low), side="right") - 1
    item = world.entry_item[np.clip(position, start, end - 1)]
    random = users.random_user[user]
    if random.any():                       # uniform over the items released by then
        released = world.released[bucket[random]]
        item[random] = world.release_order[(rng.random(int(random.sum())) * released).astype(np.int64)]
    return item


def _repeats(user: np.ndarray, item: np.ndarray, n_items: int) -> np.ndarray:
    """Positions of events whose (user, item) pair already occurred earlier."""
    key = user.astype(np.int64) * n_items + item
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    return np.sort(order[1:][sorted_key[1:] == sorted_key[:-1]])


def _inverse_cdf_rows(cdf: np.ndarray, row: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Sample a column per row from row-wise cumulative distributions ``cdf`` (rows end at 1).

    >>> cdf = np.array([[0.5, 1.0], [0.0, 1.0]])
    >>> _inverse_cdf_rows(cdf, np.array([0, 0, 1]), np.array([0.2, 0.7, 0.1])).tolist()
    [0, 1, 1]
    """
    n_rows, n_cols = cdf.shape
    flat = (cdf + np.arange(n_rows)[:, None]).ravel()  # rows stacked into one increasing array
    column = np.searchsorted(flat, row + u, side="right") - row * n_cols
    return np.clip(column, 0, n_cols - 1)
