"""Settings of the data layer: the source (``dataset``), preparation (``data``) and the split (``split``).

These dataclasses are the schema Hydra validates ``configs/dataset/*.yaml`` and the
``data``/``split`` sections against; library code receives them, never a DictConfig.

>>> SplitConfig().protocol, SplitConfig().ratios
('random', [0.8, 0.1, 0.1])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class SyntheticConfig:
    """The built-in generator (``dataset=synthetic``): users with latent topic tastes."""

    n_users: int = 2000
    n_items: int = 1000
    n_topics: int = 8
    mean_interactions_per_user: float = 40.0
    zipf_exponent: float = 1.0          # item popularity ~ rank^-exponent within a topic
    topic_affinity: float = 0.8         # share of a user's events drawn from their preferred topics
    start_timestamp: int = 1_600_000_000
    span_days: int = 365
    drift: float = 0.5                  # how much topic popularity shifts over the time span (0 = none)
    cold_item_fraction: float = 0.05    # items that appear only late in time (cold in temporal splits)
    text_informative: bool = True       # False: titles/descriptions are random words (uninformative text)
    popularity_user_fraction: float = 0.0  # users who pick items by global popularity only
    random_user_fraction: float = 0.0   # users who pick released items uniformly at random: nothing predicts them
    rating: bool = True                 # emit 1–5 star ratings correlated with topic match
    chunk_users: int = 20_000           # users generated per chunk; bounds memory for huge sizes
    seed: int = 0


@dataclass
class DatasetConfig:
    """Where the interactions and item text come from.

    ``name`` picks the loader: ``synthetic``, ``movielens``, ``amazon`` or ``table``.
    ``format`` ``auto`` detects the publisher's layout from the files present.
    """

    name: str = "synthetic"
    label: Optional[str] = None         # the dataset's name in report rows (default: name)
    path: Optional[str] = None          # directory (or URI) of the publisher's files
    format: str = "auto"
    interactions: Optional[str] = None  # table: interactions file (Parquet or CSV)
    items: Optional[str] = None         # table: item metadata file (optional)
    users: Optional[str] = None         # table: user attribute file (optional)
    columns: dict[str, Optional[str]] = field(default_factory=dict)  # canonical name -> source column (null: unmapped)
    item_columns: dict[str, str] = field(default_factory=dict)  # item field -> source column
    user_columns: dict[str, str] = field(default_factory=dict)  # user field -> source column
    timestamp_unit: str = "auto"        # auto | s | ms | us | ns
    rating_scale: Optional[list[float]] = None  # [min, max]; None: not checked
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class DataConfig:
    """How a loaded source is prepared: cleaning, filtering, and where results are cached."""

    cache_dir: str = "data_cache"
    engine: str = "ray"                 # ray | local
    implicit_threshold: Optional[float] = None  # keep ratings >= threshold as positives
    duplicates: str = "first"           # (user, item, timestamp) repeats: keep | first | last | error
    min_user_interactions: int = 0      # iterative k-core: users
    min_item_interactions: int = 0      # iterative k-core: items
    kcore_max_iterations: int = 50
    invalid_rows: str = "error"         # rows with a NaN/inf/absurd value or an empty id: error | drop (counted)
    reuse_cache: bool = True


@dataclass
class SplitConfig:
    """How interactions are divided into train / val / test, reproducibly from ``seed``.

    - ``random``: per user, a random ``ratios`` share of their interactions.
    - ``temporal``: global cutoffs; ``cutoffs`` (two timestamps) or ``ratios`` of events in time order.
    - ``leave_last``: per user, the last ``leave_last_n`` events to test, the ``leave_last_n`` before to val.
    - ``user_holdout``: whole users, ``ratios`` of users to train / val / test (cold-start users).
    - ``given``: the user's own split, either a column of the interaction table holding
      ``train`` / ``val`` / ``test`` (``column``; ``dataset.columns.split`` maps it for
      ``dataset=table``) or one interaction file per split (``files``, val optional).
    """

    protocol: str = "random"
    ratios: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    seed: int = 42
    leave_last_n: int = 1
    cutoffs: Optional[list[int]] = None
    column: str = "split"               # given: the column of split labels
    # given: {train: FILE, val: FILE, test: FILE}; null: no file (val may be left out)
    files: dict[str, Optional[str]] = field(default_factory=lambda: {"train": None, "val": None, "test": None})
