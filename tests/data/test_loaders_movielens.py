"""MovieLens loaders on files written in each release's exact format, and on the real ml-latest-small."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data.config import DatasetConfig
from recsys.data.loaders import detect_layout, load_source, read_interactions, read_items, read_users
from recsys.data.schema import INTERACTION_SCHEMA
from tests.data import publisher_fixtures as pub


def _movielens(path, **kwargs) -> DatasetConfig:
    return DatasetConfig(name="movielens", path=str(path), **kwargs)


def _expected_interactions(ratings) -> list[tuple]:
    return [(str(u), str(i), t, r) for u, i, r, t in ratings]


def test_ml100k_reads_tab_ratings_latin1_items_flags_and_users(tmp_path):
    source = load_source(_movielens(pub.write_ml100k(tmp_path)))
    assert source.layout.format == "ml-100k"
    assert dict(source.interactions.schema) == INTERACTION_SCHEMA
    assert source.interactions.rows() == _expected_interactions(pub.RATINGS)
    items = {row["item_id"]: row for row in source.items.to_dicts()}
    assert items["2"]["title"] == "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)"
    assert items["1"]["genres"] == "Animation|Children's|Comedy"
    assert items["4"]["genres"] == "Crime"
    assert source.users.rows() == [("1", "M", 24, "technician", "85711"), ("2", "F", 53, "other", "94043"),
                                   ("3", "M", 23, "writer", "32067")]
    assert source.users.columns == ["user_id", "gender", "age", "occupation", "zip"]


def test_ml100k_genre_names_come_from_u_genre_when_present(tmp_path):
    folder = pub.write_ml100k(tmp_path)
    renamed = [g if g != "Crime" else "Heist" for g in pub.GENRES_100K]
    (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(renamed)) + "\n")
    cfg = _movielens(folder)
    items = read_items(detect_layout(cfg), cfg)
    assert items.filter(item_id="4")["genres"].item() == "Heist"


def test_ml100k_without_u_genre_uses_the_standard_genre_list(tmp_path):
    cfg = _movielens(pub.write_ml100k(tmp_path, genre_file=False))
    layout = detect_layout(cfg)
    assert "genres" not in layout.extra_files
    assert read_items(layout, cfg).filter(item_id="1")["genres"].item() == "Animation|Children's|Comedy"


def test_ml1m_splits_double_colons_and_decodes_latin1(tmp_path):
    cfg = _movielens(pub.write_ml1m(tmp_path))
    layout = detect_layout(cfg)
    assert layout.format == "ml-1m"
    assert read_interactions(layout, layout.interaction_files[0], cfg).rows() == _expected_interactions(pub.RATINGS)
    items = read_items(layout, cfg)
    assert items.columns == ["item_id", "title", "genres"]
    assert items.rows()[1] == ("2", "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)", "Comedy|Romance")
    users = read_users(layout, cfg)
    assert users.rows()[0] == ("1", "F", 1, "10", "48067")


def test_ml10m_half_stars_mixed_encodings_and_aggregated_tags(tmp_path):
    cfg = _movielens(pub.write_ml10m(tmp_path))
    layout = detect_layout(cfg)
    assert layout.format == "ml-10m"
    ratings = read_interactions(layout, layout.interaction_files[0], cfg)
    assert ratings["rating"].to_list() == [4.5, 3.5, 0.5]
    items = {row["item_id"]: row for row in read_items(layout, cfg).to_dicts()}
    # movie 2's line is Latin-1 among UTF-8 lines: both decode to the same title
    assert items["2"]["title"] == "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)"
    assert items["1"]["title"] == "Toy Story (1995)"
    # "pixar"/"Pixar" count as one tag used twice, so it comes before "fun"
    assert items["1"]["tags"] == "Pixar|fun"
    assert items["3"]["tags"] == "politics, US"
    assert items["4"]["tags"] is None
    assert read_users(layout, cfg) is None


def test_ml_csv_handles_crlf_quoted_titles_and_tags(tmp_path):
    source = load_source(_movielens(pub.write_ml_csv(tmp_path)))
    assert source.layout.format == "ml-csv"
    assert source.interactions.rows() == _expected_interactions(pub.RATINGS_HALF_STARS)
    items = {row["item_id"]: row for row in source.items.to_dicts()}
    assert items["3"]["title"] == "American President, The (1995)"
    assert items["4"]["title"] == 'Sting, The "Special Edition" (1973)'
    assert items["4"]["genres"] == "Crime"
    assert items["1"]["tags"] == "Pixar|fun"
    assert not source.items.select(pl.col(pl.Utf8).str.contains("\r").any()).row(0).count(True)


def test_detects_a_release_one_folder_below_the_given_path(tmp_path):
    pub.write_ml1m(tmp_path / "ml-1m")
    layout = detect_layout(_movielens(tmp_path))
    assert layout.format == "ml-1m"
    assert Path(layout.root).name == "ml-1m"


def test_explicit_format_is_used(tmp_path):
    cfg = _movielens(pub.write_ml1m(tmp_path), format="ml-10m")
    layout = detect_layout(cfg)
    assert layout.format == "ml-10m" and layout.user_files == []


def test_file_uri_reads_the_same_as_a_local_path(tmp_path):
    folder = pub.write_ml_csv(tmp_path)
    by_path = load_source(_movielens(folder))
    by_uri = load_source(_movielens(folder.as_uri()))
    assert by_uri.layout.interaction_files[0].startswith("file://")
    assert by_uri.interactions.equals(by_path.interactions)
    assert by_uri.items.equals(by_path.items)


def test_load_source_records_size_and_sha256_of_every_file(tmp_path):
    folder = pub.write_ml100k(tmp_path)
    source = load_source(_movielens(folder))
    recorded = {Path(path).name: (size, digest) for path, size, digest in source.files}
    assert set(recorded) == {"u.data", "u.item", "u.user", "u.genre"}
    for name, (size, digest) in recorded.items():
        content = (folder / name).read_bytes()
        assert size == len(content)
        assert digest == hashlib.sha256(content).hexdigest()


_ratings = st.lists(
    st.tuples(st.integers(1, 10_000), st.integers(1, 200_000),
              st.sampled_from([0.5, 1.0, 2.5, 3.0, 4.5, 5.0]), st.integers(0, 2_000_000_000)),
    min_size=1, max_size=30,
)


@settings(max_examples=25, deadline=None)
@given(ratings=_ratings, release=st.sampled_from(["ml-1m", "ml-10m", "ml-csv"]))
def test_any_ratings_written_in_a_release_format_read_back_unchanged(ratings, release):
    writer = {"ml-1m": pub.write_ml1m, "ml-10m": pub.write_ml10m, "ml-csv": pub.write_ml_csv}[release]
    with tempfile.TemporaryDirectory() as folder:
        cfg = _movielens(writer(Path(folder), ratings=ratings))
        layout = detect_layout(cfg)
        assert layout.format == release
        frame = read_interactions(layout, layout.interaction_files[0], cfg)
    assert frame.rows() == _expected_interactions(ratings)


def test_real_ml_latest_small(ml_latest_small):
    source = load_source(_movielens(ml_latest_small))
    assert source.layout.format == "ml-csv"
    ratings = source.interactions
    assert ratings.height == 100_836
    assert ratings["user_id"].n_unique() == 610
    assert ratings["item_id"].n_unique() == 9_724
    assert ratings.null_count().row(0) == (0, 0, 0, 0)
    assert source.items.height == 9_742
    assert source.items.filter(item_id="11")["title"].item() == "American President, The (1995)"
    assert source.items.filter(item_id="1")["genres"].item() == "Adventure|Animation|Children|Comedy|Fantasy"
    assert source.items["tags"].is_not_null().sum() > 1_000
    text = source.items.select(pl.col(pl.Utf8).str.contains("\r").any())
    assert text.row(0) == (False,) * len(text.columns)
    assert len(source.files) == 3
