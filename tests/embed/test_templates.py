"""Item text templates: hand-written cases, bad inputs, and properties over arbitrary values."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.embed.config import DATASET_TEMPLATES, DEFAULT_TEMPLATE, EncoderConfig, template_for
from recsys.embed.templates import TextSpec, build_text_table, clean_value, parse_template, text_hash
from recsys.errors import ConfigError, DataError

MOVIE = "{title}[. Genres: {genres}][. Tags: {tags}]"


def test_required_and_optional_parts_render_as_written():
    spec = TextSpec(MOVIE)
    assert spec.render({"title": "Heat (1995)", "genres": "Action|Crime|Thriller", "tags": "Pacino|De Niro"}) == \
        "Heat (1995). Genres: Action, Crime, Thriller. Tags: Pacino, De Niro"
    assert spec.render({"title": "Heat (1995)", "genres": None, "tags": "heist"}) == "Heat (1995). Tags: heist"
    assert spec.render({"title": None, "genres": "Drama", "tags": None}) == "Genres: Drama"
    assert TextSpec("{title}. {genres}").render({"title": "", "genres": "Drama"}) == "Drama"


def test_punctuation_that_belongs_to_a_value_is_kept():
    spec = TextSpec(MOVIE)
    assert spec.render({"title": "...And Justice for All (1979)", "genres": "Drama"}) == \
        "...And Justice for All (1979). Genres: Drama"
    assert spec.render({"title": None, "genres": "-Drama-"}) == "Genres: -Drama-"
    assert TextSpec("Title: {title}").render({"title": "Heat"}) == "Title: Heat"


def test_optional_part_needs_every_field_inside():
    spec = TextSpec("{title}[ by {director} in {year}]")
    assert spec.render({"title": "Alien", "director": "Scott", "year": "1979"}) == "Alien by Scott in 1979"
    assert spec.render({"title": "Alien", "director": "Scott", "year": None}) == "Alien"


def test_literal_braces_and_brackets():
    assert TextSpec("[[{title}]] {{x}}").render({"title": "A"}) == "[A] {x}"


def test_values_are_cleaned():
    assert clean_value("  a\tb\n\nc\x00d  ") == ("a b c d", False)
    assert clean_value(["x", None, "y|z"]) == ("x, y, z", False)
    assert clean_value(b"plain") == ("plain", False)
    assert clean_value("bad \udce9 surrogate") == ("bad \ufffd surrogate", True)
    assert clean_value(b"\xff\xfe caf\xe9") == ("\ufffd\ufffd caf\ufffd", True)
    assert clean_value("real \ufffd stays") == ("real \ufffd stays", False)


@pytest.mark.parametrize("template, problem", [
    ("{title", "bad field"),
    ("{ti tle}", "bad field"),
    ("{title}[. {genres}", "never closed"),
    ("{title}]", "without"),
    ("[a [{b}]]", "cannot nest"),
    ("no fields here", "uses no field"),
    ("{title}}", "without"),
])
def test_malformed_templates_name_the_setting(template, problem):
    with pytest.raises(ConfigError, match=problem) as err:
        parse_template(template, "encoder.templates.movielens")
    assert "encoder.templates.movielens" in str(err.value)


def test_fallback_when_every_field_is_empty_and_id_substitution():
    spec = TextSpec(MOVIE, fallback="movie {item_id}")
    assert spec.text_for({"item_id": "42", "title": "  ", "genres": None, "tags": ""}) == \
        ("movie 42", True, False, False)
    assert spec.text_for({"item_id": "42", "title": "T", "genres": None, "tags": None})[1] is False


def test_long_descriptions_are_cut_and_counted():
    spec = TextSpec("{title}[. {description}]", max_chars=300)
    text, fallback, truncated, _ = spec.text_for({"title": "Long", "description": "word " * 20_000})
    assert len(text) == 300 and truncated and not fallback
    assert text.startswith("Long. word word")


def test_text_table_counts_fallbacks_repairs_and_truncations():
    items = pa.table({
        "item_id": ["1", "2", "3", "4"],
        "title": pa.array([b"Caf\xe9 Society", b"", b"Ok", None], pa.binary()),
        "description": ["x" * 100_000, None, "fine", None],
    })
    out = build_text_table(items, TextSpec("{title}[. {description}]", max_chars=1000))
    assert out.column_names == ["item_id", "text", "text_hash", "is_fallback", "is_truncated", "is_repaired"]
    assert out.column("item_id").to_pylist() == ["1", "2", "3", "4"]
    assert out.column("is_fallback").to_pylist() == [False, True, False, True]
    assert out.column("is_truncated").to_pylist() == [True, False, False, False]
    assert out.column("is_repaired").to_pylist() == [True, False, False, False]
    assert out.column("text").to_pylist()[0].startswith("Caf\ufffd Society. xxx")
    assert out.column("text_hash").to_pylist()[1] == text_hash("unknown item")


def test_missing_required_column_is_a_data_error_naming_it():
    items = pa.table({"item_id": ["1"], "genres": ["Drama"]})
    with pytest.raises(DataError, match=r"needs column\(s\) \['title'\]") as err:
        build_text_table(items, TextSpec(MOVIE), "data/items.parquet")
    message = str(err.value)
    assert "data/items.parquet" in message and "encoder.template" in message


def test_table_with_none_of_the_fields_is_a_data_error():
    items = pa.table({"item_id": ["1"], "name": ["Heat"]})
    with pytest.raises(DataError, match="none of the text columns"):
        build_text_table(items, TextSpec(DEFAULT_TEMPLATE))


def test_missing_optional_columns_are_simply_absent():
    items = pa.table({"item_id": ["1"], "title": ["Heat"]})
    assert build_text_table(items, TextSpec(DEFAULT_TEMPLATE)).column("text").to_pylist() == ["Heat"]


def test_missing_item_id_is_a_data_error():
    with pytest.raises(DataError, match="no 'item_id' column"):
        build_text_table(pa.table({"title": ["Heat"]}), TextSpec(MOVIE))


def test_every_shipped_template_parses_and_config_picks_per_dataset():
    for template in [DEFAULT_TEMPLATE, *DATASET_TEMPLATES.values()]:
        assert TextSpec(template).fields
    cfg = EncoderConfig(templates={"mine": "{name}"})
    assert template_for(cfg, "mine") == "{name}"
    assert template_for(cfg, "movielens") == DEFAULT_TEMPLATE


def test_templates_can_be_set_from_the_command_line():
    from rayjobs._common import compose

    cfg = compose(['encoder.template="{title}[. Genres: {genres}]"', '+encoder.templates.table="{name}"'])
    assert cfg.encoder.template == "{title}[. Genres: {genres}]"
    assert cfg.encoder.templates["table"] == "{name}" and "movielens" in cfg.encoder.templates


def test_bad_fallback_or_cap_is_a_config_error():
    with pytest.raises(ConfigError, match="encoder.fallback_text"):
        TextSpec(MOVIE, fallback="  ")
    with pytest.raises(ConfigError, match="encoder.max_chars"):
        TextSpec(MOVIE, max_chars=0)


values = st.one_of(st.none(), st.text(max_size=60), st.binary(max_size=60),
                   st.lists(st.one_of(st.none(), st.text(max_size=10)), max_size=4), st.integers())


@settings(max_examples=300, deadline=None)
@given(title=values, genres=values, tags=values, max_chars=st.integers(1, 80))
def test_any_row_gives_one_clean_bounded_text(title, genres, tags, max_chars):
    spec = TextSpec(MOVIE, fallback="fallback {item_id}", max_chars=max_chars)
    text, fallback, truncated, _ = spec.text_for({"item_id": "7", "title": title, "genres": genres, "tags": tags})
    assert 0 < len(text) <= max_chars
    assert text == text.strip() or truncated
    assert not any(ch in text for ch in "\n\t\x00|")
    text.encode("utf-8")   # always valid UTF-8 (no lone surrogates)
    all_empty = all(not clean_value(v)[0] for v in (title, genres, tags))
    assert fallback == all_empty
    assert spec.text_for({"item_id": "7", "title": title, "genres": genres, "tags": tags})[0] == text
