"""The synthetic generator: determinism, chunking, schema, and the known answers it plants."""

from __future__ import annotations

import re
import tracemalloc
from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data.config import SyntheticConfig
from recsys.data.schema import INTERACTION_SCHEMA
from recsys.data.synthetic import (
    generate_chunk, generate_items, generate_users, item_truth, iter_chunks, n_chunks, user_truth,
    write_synthetic,
)
from recsys.data.synthetic_text import (
    BUILTIN_TOPICS, NEUTRAL_ADJECTIVES, NEUTRAL_NOUNS, max_topics, topic_vocabularies,
)
from recsys.errors import ConfigError

SMALL = SyntheticConfig(n_users=600, n_items=300, n_topics=6, mean_interactions_per_user=12,
                        chunk_users=250, popularity_user_fraction=0.2, seed=3)
MEDIUM = SyntheticConfig(n_users=2000, n_items=1000, n_topics=8, popularity_user_fraction=0.25)


def _all(cfg: SyntheticConfig) -> pl.DataFrame:
    return pl.concat(list(iter_chunks(cfg)))


def _with_truth(cfg: SyntheticConfig) -> pl.DataFrame:
    return _all(cfg).join(item_truth(cfg), on="item_id").join(user_truth(cfg), on="user_id")


def _in_preferred_topic() -> pl.Expr:
    def same(a: str, b: str) -> pl.Expr:
        return (pl.col(a) == pl.col(b)).fill_null(False)
    return (same("topic", "top_topic") | same("topic", "second_topic")
            | same("secondary_topic", "top_topic") | same("secondary_topic", "second_topic"))


# --- determinism and chunking ------------------------------------------------------------

def test_same_seed_gives_identical_tables_and_another_seed_does_not():
    again = replace(SMALL)
    for make in (_all, generate_items, item_truth, user_truth):
        assert make(SMALL).equals(make(again))
    other = replace(SMALL, seed=4)
    for make in (_all, generate_items, item_truth, user_truth):
        assert not make(SMALL).equals(make(other))


def test_a_chunk_made_alone_equals_the_same_chunk_from_the_iterator():
    chunks = list(iter_chunks(SMALL))
    assert len(chunks) == n_chunks(SMALL) == 3
    for k in (2, 0, 1):
        assert generate_chunk(SMALL, k).equals(chunks[k])


def test_a_chunk_does_not_depend_on_how_many_other_chunks_there_are():
    more_users = replace(SMALL, n_users=5 * SMALL.n_users)
    assert generate_chunk(SMALL, 1).equals(generate_chunk(more_users, 1))


def test_chunks_hold_disjoint_consecutive_users():
    users = [set(c["user_id"].unique()) for c in iter_chunks(SMALL)]
    assert users[0].isdisjoint(users[1]) and users[1].isdisjoint(users[2])
    assert min(users[1]) == "u0000250" and max(users[2]) <= "u0000599"


def test_asking_for_a_chunk_that_does_not_exist_is_a_config_error():
    with pytest.raises(ConfigError, match=r"outside the 3 chunks.*ask for a chunk in 0..2"):
        generate_chunk(SMALL, 3)


# --- schema and sizes ----------------------------------------------------------------------

def test_interactions_are_canonical_with_well_formed_ids_and_values():
    frame = _all(SMALL)
    assert frame.schema == pl.Schema(INTERACTION_SCHEMA)
    assert frame.null_count().select(pl.exclude("rating")).sum_horizontal().item() == 0
    assert frame["user_id"].str.contains(r"^u\d{7}$").all()
    assert frame["item_id"].str.contains(r"^i\d{6}$").all()
    assert set(frame["item_id"]) <= set(generate_items(SMALL)["item_id"])
    end = SMALL.start_timestamp + SMALL.span_days * 86_400
    assert frame["timestamp"].min() >= SMALL.start_timestamp and frame["timestamp"].max() < end
    assert set(frame["rating"].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert frame.height == frame.unique(["user_id", "item_id"]).height  # no repeated pairs


def test_without_ratings_the_rating_column_is_null_float32():
    frame = generate_chunk(replace(SMALL, rating=False), 0)
    assert frame.schema["rating"] == pl.Float32 and frame["rating"].null_count() == frame.height


def test_items_table_has_text_and_no_ground_truth():
    items = generate_items(SMALL)
    assert items.columns == ["item_id", "title", "description", "genres"]
    assert items.height == SMALL.n_items and items["item_id"].is_unique().all()
    assert items["title"].str.split(" ").list.len().is_between(3, 6).all()


def test_interactions_per_user_average_near_the_configured_mean_and_are_heavy_tailed():
    cfg = replace(MEDIUM, n_items=5000)
    per_user = _all(cfg).group_by("user_id").len()["len"]
    assert per_user.len() == cfg.n_users
    assert abs(per_user.mean() - cfg.mean_interactions_per_user) < 0.08 * cfg.mean_interactions_per_user
    assert (per_user >= 3).mean() > 0.99
    assert per_user.max() > 5 * cfg.mean_interactions_per_user  # a long tail of heavy users


# --- planted structure ---------------------------------------------------------------------

def test_popularity_weights_match_a_hand_computed_zipf_law():
    truth = item_truth(SyntheticConfig(n_items=4, n_topics=1, mean_interactions_per_user=3,
                                       cold_item_fraction=0.0))
    weights = sorted(truth["popularity"].to_list(), reverse=True)
    assert weights == pytest.approx([12 / 25, 6 / 25, 4 / 25, 3 / 25])  # 1, 1/2, 1/3, 1/4 over 25/12


def test_popularity_users_draw_items_in_proportion_to_popularity():
    cfg = SyntheticConfig(n_users=20_000, n_items=2000, n_topics=5, mean_interactions_per_user=3,
                          popularity_user_fraction=1.0, cold_item_fraction=0.0, chunk_users=5000)
    counts = _all(cfg).group_by("item_id").len()
    joined = item_truth(cfg).join(counts, on="item_id", how="left").fill_null(0)
    observed = joined["len"].to_numpy() / joined["len"].sum()
    expected = joined["popularity"].to_numpy()
    assert np.corrcoef(observed, expected)[0, 1] > 0.97
    top = np.argmax(expected)
    assert observed[top] == pytest.approx(expected[top], rel=0.15)


def test_random_users_pick_released_items_uniformly_and_taste_users_do_not():
    cfg = SyntheticConfig(n_users=4000, n_items=200, n_topics=4, mean_interactions_per_user=10,
                          random_user_fraction=0.5, cold_item_fraction=0.1, chunk_users=1000)
    frame = _with_truth(cfg)
    assert (frame["timestamp"] >= frame["release_timestamp"]).all()          # never before release
    for is_random, top_share_limit in ((True, 0.08), (False, None)):
        events = frame.filter(pl.col("random_user") == is_random, ~pl.col("cold"))
        counts = events.group_by("item_id").len()["len"].sort(descending=True).to_numpy()
        top_share = counts[:10].sum() / counts.sum()                       # 10 of the 180 warm items
        if is_random:
            assert top_share < top_share_limit                              # uniform: 10 / 180 = 0.056
            assert counts.min() > 0.5 * counts.mean()
        else:
            assert top_share > 0.2                                          # Zipf within topics
    shares = dict(frame.group_by("random_user").agg(_in_preferred_topic().mean()).rows())
    assert shares[True] < 0.6 < shares[False]


def test_random_users_leave_every_other_draw_of_the_users_unchanged():
    plain = user_truth(SMALL)
    mixed = user_truth(replace(SMALL, random_user_fraction=0.3))
    for column in ("popularity_user", "top_topic", "second_topic", "active_from", "planned_interactions"):
        assert mixed[column].equals(plain[column]), column
    assert not (mixed["random_user"] & mixed["popularity_user"]).any()
    assert 0.15 < mixed["random_user"].mean() < 0.35


def test_the_users_table_names_each_users_behaviour():
    cfg = replace(SMALL, random_user_fraction=0.3)
    users = generate_users(cfg).join(user_truth(cfg), on="user_id")
    expected = (users["popularity_user"].cast(int) * 1 + users["random_user"].cast(int) * 2).replace_strict(
        {0: "taste", 1: "popularity", 2: "random"})
    assert users["behaviour"].equals(expected.alias("behaviour"))
    assert set(users["behaviour"]) == {"taste", "popularity", "random"}
    assert generate_users(replace(SMALL, popularity_user_fraction=0.0)) is None


def test_a_tenth_of_the_items_gets_a_large_share_of_the_interactions():
    def top_decile_share(cfg):
        counts = _all(cfg).group_by("item_id").len()["len"].sort(descending=True)
        return counts.head(cfg.n_items // 10).sum() / counts.sum()
    zipf = top_decile_share(MEDIUM)
    flat = top_decile_share(replace(MEDIUM, zipf_exponent=0.0))
    assert zipf > 0.35 and zipf > flat + 0.15


def test_topic_users_concentrate_on_their_preferred_topics_and_popularity_users_do_not():
    shares = dict(_with_truth(MEDIUM).group_by("popularity_user").agg(_in_preferred_topic().mean()).rows())
    assert shares[False] > 0.7
    assert shares[True] < shares[False] - 0.3


def test_popularity_users_follow_global_popularity_more_closely_than_topic_users():
    frame = _with_truth(MEDIUM).with_columns(user=pl.col("user_id").str.slice(1).cast(pl.Int64),
                                             item=pl.col("item_id").str.slice(1).cast(pl.Int64))
    counts = np.zeros((MEDIUM.n_users, MEDIUM.n_items))
    np.add.at(counts, (frame["user"].to_numpy(), frame["item"].to_numpy()), 1.0)
    popularity = item_truth(MEDIUM)["popularity"].to_numpy()
    centred = counts - counts.mean(axis=1, keepdims=True)
    p = popularity - popularity.mean()
    corr = centred @ p / (np.linalg.norm(centred, axis=1) * np.linalg.norm(p))
    is_pop = user_truth(MEDIUM)["popularity_user"].to_numpy()
    assert corr[is_pop].mean() > corr[~is_pop].mean() + 0.05


def test_ratings_are_higher_when_the_item_matches_the_users_taste():
    means = dict(_with_truth(MEDIUM).group_by(_in_preferred_topic().alias("match"))
                 .agg(pl.col("rating").mean()).rows())
    assert means[True] > means[False] + 0.7


def test_cold_items_are_released_late_and_never_seen_before_release():
    truth = item_truth(MEDIUM)
    span = MEDIUM.span_days * 86_400
    cold = truth.filter("cold")
    assert cold.height == round(MEDIUM.cold_item_fraction * MEDIUM.n_items)
    assert (cold["release_timestamp"] >= MEDIUM.start_timestamp + 0.9 * span).all()
    assert (truth.filter(~pl.col("cold"))["release_timestamp"] <= MEDIUM.start_timestamp).all()
    frame = _with_truth(MEDIUM)
    assert (frame["timestamp"] >= frame["release_timestamp"]).all()
    assert frame.filter("cold")["item_id"].n_unique() > cold.height // 2  # they do get used later


def _topic_shift(cfg: SyntheticConfig) -> float:
    """Total variation distance between topic shares in the first and last tenth of time."""
    frame = _with_truth(cfg)
    low, high = frame["timestamp"].quantile(0.1), frame["timestamp"].quantile(0.9)
    first = frame.filter(pl.col("timestamp") <= low)["topic"].value_counts(normalize=True)
    last = frame.filter(pl.col("timestamp") >= high)["topic"].value_counts(normalize=True)
    both = first.join(last, on="topic", how="full", coalesce=True).fill_null(0.0)
    return both.select((pl.col("proportion") - pl.col("proportion_right")).abs().sum() / 2).item()


def test_topic_popularity_drifts_over_time_only_when_asked():
    cfg = SyntheticConfig(n_users=5000, n_items=500, mean_interactions_per_user=10, chunk_users=2500)
    still, moving = _topic_shift(replace(cfg, drift=0.0)), _topic_shift(replace(cfg, drift=0.5))
    assert still < 0.06
    assert moving > 0.1 and moving > 2 * still


# --- text carries the topic, or not --------------------------------------------------------

def _own_topic_shares(cfg: SyntheticConfig) -> tuple[float, float, float]:
    """Mean over items of: topic words from the item's own topics (title+description), same for
    all title words, and the share of items whose genres name their topic."""
    vocab = {v.name: v.words for v in topic_vocabularies(cfg.n_topics)}
    topic_words = frozenset().union(*vocab.values())
    frame = generate_items(cfg).join(item_truth(cfg), on="item_id")
    text_share, title_share, genre_hit = [], [], []
    for title, desc, genres, topic, second in frame.select(
            "title", "description", "genres", "topic", "secondary_topic").iter_rows():
        own = vocab[topic] | (vocab[second] if second else frozenset())
        words = [w for w in re.findall(r"[a-z]+", f"{title} {desc}".lower()) if w in topic_words]
        text_share.append(np.mean([w in own for w in words]) if words else 0.0)
        title_share.append(np.mean([w in own for w in title.lower().split()]))
        genre_hit.append(topic in genres.split("|"))
    return float(np.mean(text_share)), float(np.mean(title_share)), float(np.mean(genre_hit))


def test_informative_text_is_written_from_the_items_topic():
    text, title, genres = _own_topic_shares(SMALL)
    assert text > 0.99 and title > 0.7 and genres == 1.0


def test_uninformative_text_is_independent_of_the_topic():
    text, title, genres = _own_topic_shares(replace(SMALL, text_informative=False))
    assert text < 0.35 and title < 0.3 and genres < 0.45


def test_vocabularies_are_disjoint_and_large_enough():
    vocabs = topic_vocabularies(len(BUILTIN_TOPICS))
    assert len(vocabs) >= 12 and all(len(v.words) >= 25 for v in vocabs)
    neutral = set(NEUTRAL_NOUNS) | set(NEUTRAL_ADJECTIVES)
    seen: set[str] = set()
    for v in vocabs:
        assert seen.isdisjoint(v.words) and neutral.isdisjoint(v.words), v.name
        seen |= v.words


def test_more_topics_than_built_in_ones_are_combinations_with_their_own_names():
    n = len(BUILTIN_TOPICS) + 3
    cfg = SyntheticConfig(n_users=50, n_items=200, n_topics=n, mean_interactions_per_user=5)
    names = item_truth(cfg)["topic"].unique().to_list()
    assert len(names) == n and "space-cooking" in names
    assert _own_topic_shares(cfg)[0] > 0.99
    with pytest.raises(ValueError):
        topic_vocabularies(max_topics() + 1)


# --- configuration errors ------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("n_users", 0, "must be at least 1, got 0"),
    ("n_users", -5, "must be at least 1"),
    ("n_users", "10", "must be an integer"),
    ("n_items", 0, "must be at least 1"),
    ("n_topics", 0, "must be at least 1"),
    ("n_topics", 2000, "n_topics (2000) is larger than n_items (1000)"),
    ("n_topics", 700, "at most 696 topics"),
    ("mean_interactions_per_user", 2.5, "must be at least 3"),
    ("mean_interactions_per_user", 5000, "larger than the 1000 items"),
    ("mean_interactions_per_user", float("nan"), "must be a finite number"),
    ("zipf_exponent", -1.0, "must not be negative"),
    ("drift", -0.1, "must not be negative"),
    ("topic_affinity", 1.5, "is a fraction and must be in [0, 1]"),
    ("popularity_user_fraction", -0.1, "is a fraction"),
    ("random_user_fraction", 1.5, "is a fraction"),
    ("cold_item_fraction", 1.2, "is a fraction"),
    ("cold_item_fraction", 0.999, "cold items leave fewer than one item per topic"),
    ("span_days", 0, "must be at least 1"),
    ("chunk_users", 0, "must be at least 1"),
    ("seed", -1, "must not be negative"),
    ("text_informative", "yes", "must be true or false"),
])
def test_impossible_settings_are_config_errors_naming_the_setting(field, value, message):
    cfg = replace(SyntheticConfig(), **{field: value})
    for call in (n_chunks, generate_items, lambda c: generate_chunk(c, 0)):
        with pytest.raises(ConfigError) as caught:
            call(cfg)
        assert caught.value.setting == f"dataset.synthetic.{field}"
        assert message in str(caught.value) and "What to do:" in str(caught.value)


# --- properties over random small configurations -------------------------------------------

@st.composite
def small_configs(draw):
    n_items = draw(st.integers(3, 60))
    n_topics = draw(st.integers(1, min(n_items, 20)))
    return SyntheticConfig(
        n_users=draw(st.integers(1, 40)), n_items=n_items, n_topics=n_topics,
        mean_interactions_per_user=draw(st.floats(3, max(3.0, min(n_items, 12)))),
        zipf_exponent=draw(st.floats(0, 2)), topic_affinity=draw(st.floats(0, 1)),
        span_days=draw(st.integers(1, 400)), drift=draw(st.floats(0, 2)),
        cold_item_fraction=draw(st.floats(0, 1)) * (n_items - n_topics) / n_items / 1.01,
        popularity_user_fraction=draw(st.floats(0, 1)), rating=draw(st.booleans()),
        chunk_users=draw(st.integers(1, 15)), seed=draw(st.integers(0, 2**32)),
    )


@settings(max_examples=40, deadline=None)
@given(small_configs())
def test_every_configuration_gives_valid_interactions(cfg):
    frame = _all(cfg).join(item_truth(cfg), on="item_id", how="left")
    assert frame["release_timestamp"].null_count() == 0  # every item exists
    assert (frame["timestamp"] >= frame["release_timestamp"]).all()
    assert frame.height == frame.unique(["user_id", "item_id"]).height
    assert frame["user_id"].n_unique() <= cfg.n_users
    assert frame.group_by("user_id").len()["len"].max() <= cfg.n_items
    assert (frame["rating"].null_count() == 0) == cfg.rating


# --- scale and output ----------------------------------------------------------------------

def _peak_traced_bytes(work) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_per_chunk_is_bounded_by_the_chunk_not_the_dataset():
    """NumPy working memory (traced) must scale with chunk_users, not with n_users."""
    one_chunk = SyntheticConfig(n_users=2000, chunk_users=2000)
    large = replace(one_chunk, n_users=7500)   # ~300k interactions in 4 chunks
    generate_chunk(large, 0)  # build the shared item world outside the measurement
    reference = _peak_traced_bytes(lambda: generate_chunk(one_chunk, 0))
    assert _peak_traced_bytes(lambda: generate_chunk(large, 0)) < 1.3 * reference
    assert _peak_traced_bytes(lambda: sum(c.height for c in iter_chunks(large))) < 1.3 * reference
    # The measurement can tell: the same users in a single chunk need far more.
    assert _peak_traced_bytes(lambda: generate_chunk(replace(large, chunk_users=7500), 0)) > 2.5 * reference


def test_write_synthetic_streams_parts_and_items_and_reports_counts(tmp_path):
    (tmp_path / "interactions").mkdir()
    (tmp_path / "interactions" / "part-00007.parquet").write_bytes(b"left from a bigger run")
    counts = write_synthetic(SMALL, tmp_path)
    parts = sorted(p.name for p in (tmp_path / "interactions").iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["interactions", "items.parquet"]
    written = pl.read_parquet(tmp_path / "interactions")
    assert written.equals(_all(SMALL))
    assert pl.read_parquet(tmp_path / "items.parquet").equals(generate_items(SMALL))
    assert counts == {"n_interactions": written.height, "n_users": written["user_id"].n_unique(),
                      "n_items": SMALL.n_items, "n_items_interacted": written["item_id"].n_unique(),
                      "n_chunks": 3}
