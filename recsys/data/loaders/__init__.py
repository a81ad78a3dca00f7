"""Source loaders: publishers' files (MovieLens, Amazon Reviews, any Parquet/CSV table) to canonical tables.

>>> from recsys.data.loaders import FORMATS
>>> FORMATS["movielens"]
('ml-100k', 'ml-1m', 'ml-10m', 'ml-csv')
"""

from recsys.data.loaders.files import file_fingerprint
from recsys.data.loaders.layout import FORMATS, SourceLayout, detect_layout
from recsys.data.loaders.parse import SourceWarning
from recsys.data.loaders.source import LoadedSource, load_source, read_interactions, read_items, read_users

__all__ = [
    "FORMATS",
    "LoadedSource",
    "SourceLayout",
    "SourceWarning",
    "detect_layout",
    "file_fingerprint",
    "load_source",
    "read_interactions",
    "read_items",
    "read_users",
]
