"""Settings of the diagnosis-driven search (``tune.*``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TuneConfig:
    """Search budget and mode.

    >>> TuneConfig().mode
    'directed'
    """

    rounds: int = 2
    trials: int = 8
    mode: str = "directed"              # directed | undirected
