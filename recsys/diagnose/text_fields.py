"""Item text vectors with one template field left out, through the embed stage's code and cache.

For each optional field of the dataset's template (``[. Genres: {genres}]``), the
catalogue is embedded again with the template that lacks that part
(:func:`recsys.embed.templates.remove_field`) by
:func:`recsys.embed.catalogue.embed_catalogue`, so the texts are built, cached and
aligned exactly as the embed stage does it. The template is part of the cache
fingerprint and texts are keyed by their hash: a repeated run encodes nothing new,
and items whose text does not change are looked up, not encoded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from recsys.data.prepared import PreparedDataset
from recsys.embed.catalogue import embed_catalogue, load_item_vectors
from recsys.embed.config import EncoderConfig, template_for
from recsys.embed.templates import optional_fields, remove_field
from recsys.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class FieldVectors:
    """Vectors per removed field (``(n_items, d)`` aligned with ``item_idx``) and what each cost."""

    vectors: dict[str, np.ndarray]
    templates: dict[str, str]
    encoded: dict[str, int]          # texts encoded (not found in the cache) per field


def fields_to_try(template: str, wanted: Sequence[str] = ()) -> list[str]:
    """``wanted`` (checked against the template), or every optional field of ``template``.

    >>> fields_to_try("{title}[. Genres: {genres}][. {description}]")
    ['genres', 'description']
    >>> fields_to_try("{title}[. {genres}]", ["title"])
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'diagnose.importance.fields': template '{title}[. {genres}]' has no optional field(s) ['title']. What to do: optional fields are ['genres']; a field outside [...] is required
    """
    available = optional_fields(template)
    if not wanted:
        return available
    missing = [f for f in wanted if f not in available]
    if missing:
        raise ConfigError(f"template {template!r} has no optional field(s) {missing}",
                          setting="diagnose.importance.fields",
                          hint=f"optional fields are {available}; a field outside [...] is required")
    return list(wanted)


def field_vectors(prepared: PreparedDataset, encoder: EncoderConfig, cache_root: str | Path,
                  fields: Sequence[str] = (), *, engine: Optional[str] = None) -> FieldVectors:
    """Embed ``prepared``'s catalogue once per field, each time without that field."""
    template = template_for(encoder, prepared.name)
    item_map = prepared.item_map()
    out = FieldVectors({}, {}, {})
    for name in fields_to_try(template, fields):
        reduced = remove_field(template, name, setting="diagnose.importance.fields")
        result = embed_catalogue(prepared, replace(encoder, template=reduced), cache_root, engine=engine)
        out.vectors[name] = load_item_vectors(result.path, item_map)
        out.templates[name] = reduced
        out.encoded[name] = int(result.counts.get("n_encoded", 0))
        log.info("item text without %s (%r): %d texts encoded", name, reduced, out.encoded[name])
    return out
