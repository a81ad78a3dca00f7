"""Settings of the diagnosis stage (``diagnose.*``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DiagnoseConfig:
    """Whether diagnosis runs; rule thresholds join this class as rules are added.

    >>> DiagnoseConfig().enabled
    True
    """

    enabled: bool = True
