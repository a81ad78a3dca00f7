"""Text vectors without one template field: built by the embed stage's code, cached, nothing encoded twice."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.data.config import DataConfig, SplitConfig
from recsys.data.prepare import prepare
from recsys.diagnose.text_fields import field_vectors, fields_to_try
from recsys.embed.catalogue import embed_catalogue, load_item_vectors
from recsys.embed.config import EncoderConfig
from recsys.embed.templates import TextSpec, optional_fields, remove_field
from recsys.errors import ConfigError
from tests.embed.fixtures import save_tiny_bert, tiny_synthetic


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("fields")
    prepared = prepare(tiny_synthetic(n_items=40), DataConfig(cache_dir=str(root / "prepared"), engine="local"),
                       SplitConfig())
    encoder = EncoderConfig(name="tiny", path=str(save_tiny_bert(root / "bert")), max_length=32, batch_size=16,
                            engine="local", threads_per_actor=1)
    return prepared, encoder, root / "embeddings"


def test_remove_field_drops_exactly_the_optional_part_and_keeps_escapes():
    template = "{title}[ [[{year}]]][. Genres: {genres}][. {description}]"
    assert optional_fields(template) == ["year", "genres", "description"]
    reduced = remove_field(template, "genres")
    row = {"title": "Heat", "year": "1995", "genres": "Crime", "description": "A heist."}
    assert TextSpec(reduced).render(row) == "Heat [1995]. A heist."
    assert TextSpec(template).render(row) == "Heat [1995]. Genres: Crime. A heist."
    with pytest.raises(ConfigError, match="no optional field 'title'"):
        remove_field(template, "title")


def test_fields_default_to_every_optional_field_and_unknown_ones_are_named():
    assert fields_to_try("{title}[. Genres: {genres}][. {description}]") == ["genres", "description"]
    with pytest.raises(ConfigError, match="diagnose.importance.fields"):
        fields_to_try("{title}[. {genres}]", ["tags"])


def test_vectors_without_a_field_differ_and_a_second_run_encodes_nothing(setup):
    prepared, encoder, cache = setup
    full = load_item_vectors(embed_catalogue(prepared, encoder, cache).path, prepared.item_map())
    first = field_vectors(prepared, encoder, cache, ["genres"])
    assert first.templates == {"genres": "{title}[. {description}]"}
    assert first.encoded["genres"] > 0
    vectors = first.vectors["genres"]
    assert vectors.shape == full.shape and not np.allclose(vectors, full)
    again = field_vectors(prepared, encoder, cache, ["genres"])
    assert again.encoded == {"genres": 0}
    assert np.array_equal(again.vectors["genres"], vectors)
