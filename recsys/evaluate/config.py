"""Settings of the evaluation stage (``eval.*``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalConfig:
    """Cutoffs, ranking protocol and what is stored.

    >>> EvalConfig().k
    [5, 10, 20]
    """

    k: list[int] = field(default_factory=lambda: [5, 10, 20])
    protocol: str = "full"              # full | uni100 | pop100
    save_topk: bool = True
