"""Plain words for report lines: segment names, metric labels, numbers, p-values and ranks.

Segments keep their report names in the tables (``activity_q4``, ``cold_start_users``);
sentences use the words below. ``activity_q1`` .. ``activity_qN`` are activity
quantiles (1 = fewest training interactions): the lowest reads "light users", the
highest "heavy users", the others "users of activity quartile i" (quantile i of
N when there are not four). ``user_<col>=<value>`` reads "users with <col> <value>",
``item_<col>=<value>`` "items with <col> <value>". Another name is read with its
underscores as spaces.

>>> segment_phrase("cold_start_users"), segment_phrase("all"), segment_phrase("activity_q4", n_quantiles=4)
('on cold-start users', 'overall', 'on heavy users')
>>> metric_label("ndcg", 10), format_number(0.0834), format_p(0.0004), ordinal(2)
('NDCG@10', '0.083', 'p<0.001', '2nd')
"""

from __future__ import annotations

import math
import re

SEGMENT_WORDS = {
    "all": "all users",
    "cold_start_users": "cold-start users",
    "holdout_users": "holdout users",
    "cold_items": "cold items",
    "items_head": "head items",
    "items_torso": "torso items",
    "items_tail": "tail items",
}
ACTIVITY_QUANTILES = 4       # recsys.evaluate.segments cuts activity into quartiles

METRIC_LABELS = {
    "ndcg": "NDCG", "map": "MAP", "mrr": "MRR", "auc": "AUC", "f1": "F1", "hit_rate": "HitRate",
    "recall": "Recall", "precision": "Precision", "coverage": "Coverage", "gini": "Gini",
    "novelty": "Novelty", "diversity": "Diversity", "popularity": "Popularity", "long_tail": "LongTail",
}

_QUANTILE = re.compile(r"^activity_q(\d+)$")


def activity_quantile(segment: str) -> int | None:
    """The quantile number of an ``activity_q<i>`` segment, else None.

    >>> activity_quantile("activity_q3"), activity_quantile("all")
    (3, None)
    """
    match = _QUANTILE.match(segment)
    return int(match.group(1)) if match else None


def segment_words(segment: str, n_quantiles: int | None = None) -> str:
    """A segment as words: ``"heavy users"`` for the top activity quantile of ``n_quantiles`` (default 4).

    >>> segment_words("activity_q2"), segment_words("activity_q2", 5), segment_words("user_gender=F")
    ('users of activity quartile 2', 'users of activity quantile 2 of 5', 'users with gender F')
    >>> segment_words("item_genres=Drama"), segment_words("new_segment")
    ('items with genres Drama', 'new segment')
    """
    n = n_quantiles or ACTIVITY_QUANTILES
    quantile = activity_quantile(segment)
    if quantile is not None:
        if quantile == 1:
            return "light users"
        if quantile == n:
            return "heavy users"
        return f"users of activity quartile {quantile}" if n == 4 else f"users of activity quantile {quantile} of {n}"
    for prefix, noun in (("user_", "users"), ("item_", "items")):
        if segment.startswith(prefix) and "=" in segment:
            column, _, value = segment[len(prefix):].partition("=")
            return f"{noun} with {column.replace('_', ' ')} {value}"
    return SEGMENT_WORDS.get(segment, segment.replace("_", " "))


def segment_phrase(segment: str, n_quantiles: int | None = None) -> str:
    """``"on <segment words>"``, or ``"overall"`` for the segment of every user.

    >>> segment_phrase("items_tail")
    'on tail items'
    """
    return "overall" if segment == "all" else f"on {segment_words(segment, n_quantiles)}"


def metric_label(metric: str, k: int | None, protocol: str | None = None) -> str:
    """``NDCG@10``; a metric without a cut-off is its label alone; a sampled protocol comes first.

    >>> metric_label("auc", None), metric_label("hit_rate", 5), metric_label("ndcg", 10, "uni100")
    ('AUC', 'HitRate@5', 'uni100 NDCG@10')
    """
    label = METRIC_LABELS.get(metric, metric)
    label = label if k is None else f"{label}@{k}"
    return label if protocol in (None, "full") else f"{protocol} {label}"


def format_number(value: float) -> str:
    """Two significant digits below 1 (at least two decimals, trailing zeros dropped), two decimals above.

    >>> [format_number(v) for v in (0.08, 0.0834, 0.5, 0.00123, 1.234, 0.0, -0.031)]
    ['0.08', '0.083', '0.50', '0.0012', '1.23', '0.00', '-0.031']
    """
    magnitude = abs(value)
    if magnitude == 0 or magnitude >= 1:
        return f"{value:.2f}"
    decimals = min(6, max(2, 1 - math.floor(math.log10(magnitude))))
    text = f"{value:.{decimals}f}"
    while decimals > 2 and text.endswith("0"):
        text, decimals = text[:-1], decimals - 1
    return text


def format_signed(value: float) -> str:
    """:func:`format_number` with an explicit sign.

    >>> format_signed(0.01), format_signed(-0.2)
    ('+0.01', '-0.20')
    """
    return ("+" if value >= 0 else "") + format_number(value)


def format_p(p: float) -> str:
    """``p<0.001`` for tiny values, otherwise two significant digits.

    >>> format_p(0.0234), format_p(0.41), format_p(0.001)
    ('p=0.023', 'p=0.41', 'p=0.001')
    """
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ``11th``, ``21st``.

    >>> [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)]
    ['1st', '2nd', '3rd', '4th', '11th', '12th', '13th', '21st', '22nd', '101st']
    """
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
