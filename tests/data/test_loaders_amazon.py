"""Amazon Reviews 2018 and 2023 loaders on gzip/JSON-lines files written as the publisher writes them."""

from __future__ import annotations

import gzip
import json

import pytest

from recsys.data.config import DatasetConfig
from recsys.data.loaders import SourceWarning, detect_layout, load_source, read_items
from recsys.data.schema import INTERACTION_SCHEMA
from recsys.errors import DataError
from tests.data import publisher_fixtures as pub


def _amazon(path, **kwargs) -> DatasetConfig:
    return DatasetConfig(name="amazon", path=str(path), **kwargs)


def test_2018_five_core_reviews_and_meta(tmp_path):
    with pytest.warns(SourceWarning, match="1 repeated item rows"):
        source = load_source(_amazon(pub.write_amazon_2018(tmp_path)))
    assert source.layout.format == "amazon-2018"
    assert [p.rsplit("/", 1)[-1] for p in source.layout.interaction_files] == ["Books_5.json.gz"]
    assert dict(source.interactions.schema) == INTERACTION_SCHEMA
    assert source.interactions.rows() == [("A1", "B001", 1388534400, 5.0), ("A2", "B001", 1391299200, 3.0),
                                          ("A1", "B002", 1393804800, 4.0)]
    items = source.items.to_dicts()
    assert [row["item_id"] for row in items] == ["B001", "B002"]   # the repeated B001 row is merged
    assert items[0] == {"item_id": "B001", "title": "Dune", "description": "A desert planet. Spice.",
                        "categories": "Books|Science Fiction", "brand": "Ace", "features": None}
    assert items[1]["description"] is None and items[1]["brand"] is None
    assert any("repeated item rows" in note for note in source.notes)
    assert source.users is None


def test_2018_meta_with_python_dict_literals_is_read_line_by_line(tmp_path):
    folder = pub.write_amazon_2018(tmp_path, python_literal_rows=(0, 1))
    assert gzip.decompress((folder / "meta_Books.json.gz").read_bytes()).startswith(b"{'category'")
    cfg = _amazon(folder)
    with pytest.warns(SourceWarning, match="repeated item rows"):
        items = read_items(detect_layout(cfg), cfg)
    assert items.filter(item_id="B001").row(0, named=True)["categories"] == "Books|Science Fiction"
    assert items.filter(item_id="B002")["title"].item() == "Foundation"


def test_2014_style_meta_with_nested_category_lists(tmp_path):
    meta = [{"asin": "B001", "title": "Dune", "categories": [["Books", "Fiction"], ["Kindle"]],
             "description": "One string, not a list."}]
    cfg = _amazon(pub.write_amazon_2018(tmp_path, meta=meta, python_literal_rows=(0,)))
    items = read_items(detect_layout(cfg), cfg)
    assert items.row(0, named=True)["categories"] == "Books|Fiction|Kindle"
    assert items.row(0, named=True)["description"] == "One string, not a list."


def test_a_few_unreadable_meta_lines_are_tolerated_and_reported(tmp_path):
    meta = [{"asin": f"B{i:03d}", "title": f"Book {i}"} for i in range(300)]
    folder = pub.write_amazon_2018(tmp_path, meta=None)
    lines = [json.dumps(m) for m in meta]
    lines[150] = "{'asin': 'B150', 'title': 'broken"          # neither JSON nor a Python literal
    (folder / "meta_Books.json.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.warns(SourceWarning, match="line 151"):
        source = load_source(_amazon(folder))
    assert source.items.height == 299
    assert any("skipped 1 unreadable metadata line" in note for note in source.notes)


def test_2023_jsonl_millisecond_timestamps_become_seconds(tmp_path):
    source = load_source(_amazon(pub.write_amazon_2023(tmp_path)))
    assert source.layout.format == "amazon-2023"
    assert source.interactions.rows() == [("U1", "P01", 1588687728, 5.0), ("U2", "P01", 1588687729, 2.0),
                                          ("U1", "P02", 1600000000, 4.0)]
    items = source.items.to_dicts()
    assert items[0] == {"item_id": "P01", "title": "Lip Balm", "description": "Keeps lips soft.",
                        "categories": "Beauty|Lips", "brand": "Acme", "features": "Soft Vegan"}
    assert items[1] == {"item_id": "P02", "title": "Soap", "description": None, "categories": None,
                        "brand": None, "features": None}


def test_2023_gzip_files_read_the_same(tmp_path):
    plain = load_source(_amazon(pub.write_amazon_2023(tmp_path / "plain")))
    packed = load_source(_amazon(pub.write_amazon_2023(tmp_path / "packed", gz=True)))
    assert packed.layout.interaction_files[0].endswith(".jsonl.gz")
    assert packed.interactions.equals(plain.interactions)
    assert packed.items.equals(plain.items)


def test_several_categories_are_separate_files_and_concatenate(tmp_path):
    pub.write_amazon_2018(tmp_path, "Books")
    other = [dict(r, reviewerID="Z" + r["reviewerID"]) for r in pub.REVIEWS_2018[:2]]
    pub.write_amazon_2018(tmp_path, "Movies", reviews=other, five_core=False)
    with pytest.warns(SourceWarning, match="meta_Books.json.gz, meta_Movies.json.gz: 4 repeated"):
        source = load_source(_amazon(tmp_path))
    assert [p.rsplit("/", 1)[-1] for p in source.layout.interaction_files] == ["Books_5.json.gz", "Movies.json.gz"]
    assert len(source.layout.item_files) == 2
    assert source.interactions.height == 5
    assert source.interactions["user_id"].to_list()[-2:] == ["ZA1", "ZA2"]


def test_reviews_without_meta_give_an_empty_item_table(tmp_path):
    cfg = _amazon(pub.write_amazon_2023(tmp_path, meta=None))
    layout = detect_layout(cfg)
    assert layout.item_files == []
    items = read_items(layout, cfg)
    assert items.height == 0 and items.columns[0] == "item_id"


def test_full_and_five_core_files_of_one_category_are_refused(tmp_path):
    pub.write_amazon_2018(tmp_path, "Books")
    pub.write_amazon_2018(tmp_path, "Books", five_core=False)
    with pytest.raises(DataError, match="Books.json.gz and Books_5.json.gz|Books_5.json.gz and Books.json.gz"):
        detect_layout(_amazon(tmp_path))


def test_2023_reviews_named_like_2018_point_to_the_right_format(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    data = "".join(json.dumps(r) + "\n" for r in pub.REVIEWS_2023).encode()
    (tmp_path / "Beauty.json.gz").write_bytes(gzip.compress(data))
    with pytest.raises(DataError, match="column 'reviewerID'.*dataset.format=amazon-2023"):
        load_source(_amazon(tmp_path))
