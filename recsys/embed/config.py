"""Settings of the text-embedding stage (``encoder=minilm|bert-base``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class EncoderConfig:
    """Which BERT-family encoder turns item text into vectors, and how.

    >>> EncoderConfig().pooling
    'mean'
    """

    name: str = "minilm"
    model: str = "sentence-transformers/all-MiniLM-L6-v2"  # Hub name, used when no local copy is found
    path: Optional[str] = None          # local model directory; takes precedence over everything else
    pooling: str = "mean"               # mean (masked) | cls
    normalize: bool = True
    max_length: int = 128
    batch_size: int = 64
    half_precision: bool = False        # fp16 on GPU only
    template: str = "{title}. {genres}. {tags}. {description}"
