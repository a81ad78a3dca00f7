"""Write tiny source files in each publisher's exact byte format (encodings, separators, CRLF, quoting, gzip).

Each ``write_*`` function writes into a folder and returns it; the module-level
constants are the rows written, so tests can compare what a loader reads with
what was written.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from urllib.parse import quote

GENRES_100K = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
               "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
               "War", "Western"]

# (movie id, title, genres)
MOVIES = [
    (1, "Toy Story (1995)", ["Animation", "Children's", "Comedy"]),
    (2, "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)", ["Comedy", "Romance"]),
    (3, "American President, The (1995)", ["Comedy", "Drama", "Romance"]),
    (4, 'Sting, The "Special Edition" (1973)', ["Crime"]),
]
# (user, movie, rating, timestamp)
RATINGS = [
    (1, 1, 5.0, 881250949),
    (1, 2, 3.0, 881250950),
    (2, 1, 4.0, 881250951),
    (2, 3, 1.0, 891717742),
    (3, 4, 2.0, 878887116),
]
RATINGS_HALF_STARS = [(1, 1, 4.5, 964982703), (1, 3, 3.5, 964981247), (2, 2, 0.5, 1445714994)]
# 100K: (user, age, gender, occupation, zip); 1M: (user, gender, age code, occupation code, zip)
USERS_100K = [(1, 24, "M", "technician", "85711"), (2, 53, "F", "other", "94043"), (3, 23, "M", "writer", "32067")]
USERS_1M = [(1, "F", 1, 10, "48067"), (2, "M", 56, 16, "70072"), (3, "M", 25, 15, "55117")]
# (user, movie, tag, timestamp): movie 1 is tagged "pixar" twice (two spellings) and "fun" once
TAGS = [(1, 1, "pixar", 1445714994), (2, 1, "Pixar", 1445714995), (1, 1, "fun", 1445714996),
        (2, 3, "politics, US", 1445714997)]


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def _stars(rating: float) -> str:
    return str(int(rating)) if float(rating).is_integer() else str(rating)


def write_ml100k(folder: Path, ratings=RATINGS, movies=MOVIES, users=USERS_100K, *, genre_file: bool = True) -> Path:
    """ml-100k: u.data (tab), u.item (``|``, latin-1, 24 fields with 19 genre flags), u.user, u.genre."""
    _write(folder / "u.data", "".join(f"{u}\t{i}\t{_stars(r)}\t{t}\n" for u, i, r, t in ratings), "latin-1")
    lines = []
    for movie_id, title, genres in movies:
        flags = "|".join("1" if g in genres else "0" for g in GENRES_100K)
        url = "http://us.imdb.com/M/title-exact?" + quote(title)
        lines.append(f"{movie_id}|{title}|01-Jan-1995||{url}|{flags}\n")
    _write(folder / "u.item", "".join(lines), "latin-1")
    _write(folder / "u.user", "".join(f"{u}|{a}|{g}|{o}|{z}\n" for u, a, g, o, z in users), "latin-1")
    if genre_file:
        _write(folder / "u.genre", "".join(f"{g}|{i}\n" for i, g in enumerate(GENRES_100K)) + "\n", "latin-1")
    return folder


def write_ml1m(folder: Path, ratings=RATINGS, movies=MOVIES, users=USERS_1M) -> Path:
    """ml-1m: ratings.dat / movies.dat / users.dat with ``::``, latin-1."""
    _write(folder / "ratings.dat", "".join(f"{u}::{i}::{_stars(r)}::{t}\n" for u, i, r, t in ratings), "latin-1")
    _write(folder / "movies.dat", "".join(f"{m}::{t}::{'|'.join(g)}\n" for m, t, g in movies), "latin-1")
    _write(folder / "users.dat", "".join(f"{u}::{g}::{a}::{o}::{z}\n" for u, g, a, o, z in users), "latin-1")
    return folder


def write_ml10m(folder: Path, ratings=RATINGS_HALF_STARS, movies=MOVIES, tags=TAGS,
                *, latin1_movie_ids: tuple[int, ...] = (2,)) -> Path:
    """ml-10m: ``::`` files, UTF-8 except the movie lines in ``latin1_movie_ids`` (as in re-encoded copies)."""
    _write(folder / "ratings.dat", "".join(f"{u}::{i}::{_stars(r)}::{t}\n" for u, i, r, t in ratings))
    data = b"".join(f"{m}::{t}::{'|'.join(g)}\n".encode("latin-1" if m in latin1_movie_ids else "utf-8")
                    for m, t, g in movies)
    (folder / "movies.dat").write_bytes(data)
    _write(folder / "tags.dat", "".join(f"{u}::{m}::{tag}::{t}\n" for u, m, tag, t in tags))
    return folder


def _csv(rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerows(rows)
    return buffer.getvalue()


def write_ml_csv(folder: Path, ratings=RATINGS_HALF_STARS, movies=MOVIES, tags=TAGS) -> Path:
    """ml-latest / 25M / 32M: ratings.csv, movies.csv, tags.csv with headers, CRLF, quoted fields."""
    _write(folder / "ratings.csv", _csv([["userId", "movieId", "rating", "timestamp"],
                                         *[[u, i, f"{r:.1f}", t] for u, i, r, t in ratings]]))
    _write(folder / "movies.csv", _csv([["movieId", "title", "genres"],
                                        *[[m, t, "|".join(g) or "(no genres listed)"] for m, t, g in movies]]))
    _write(folder / "tags.csv", _csv([["userId", "movieId", "tag", "timestamp"], *[list(t) for t in tags]]))
    return folder


# Amazon 2018: reviews and meta as the publisher writes them (extra fields included).
REVIEWS_2018 = [
    {"overall": 5.0, "verified": True, "reviewTime": "01 1, 2014", "reviewerID": "A1", "asin": "B001",
     "style": {"Format:": " Paperback"}, "reviewerName": "Ann", "reviewText": "Great, really.",
     "summary": "Five Stars", "unixReviewTime": 1388534400},
    {"overall": 3.0, "verified": False, "reviewTime": "02 2, 2014", "reviewerID": "A2", "asin": "B001",
     "reviewText": "ok", "summary": "meh", "unixReviewTime": 1391299200, "vote": "2"},
    {"overall": 4.0, "verified": True, "reviewTime": "03 3, 2014", "reviewerID": "A1", "asin": "B002",
     "reviewText": "Good", "summary": "Four", "unixReviewTime": 1393804800, "image": ["https://x/y.jpg"]},
]
META_2018 = [
    {"category": ["Books", "Science Fiction"], "tech1": "", "description": ["A desert planet.", "Spice."],
     "fit": "", "title": "Dune", "also_buy": ["B002"], "image": [], "brand": "Ace", "feature": [],
     "rank": "1,234 in Books (", "main_cat": "Books", "date": "", "price": "$9.99", "asin": "B001"},
    {"category": ["Books"], "description": [], "title": "Foundation", "brand": "", "asin": "B002"},
    {"category": ["Books"], "description": ["duplicate row"], "title": "Dune (again)", "asin": "B001"},
]


def _json_lines(records, *, python_literal_rows: tuple[int, ...] = ()) -> str:
    return "".join((repr(r) if n in python_literal_rows else json.dumps(r)) + "\n" for n, r in enumerate(records))


def write_amazon_2018(folder: Path, category: str = "Books", reviews=REVIEWS_2018, meta=META_2018, *,
                      five_core: bool = True, python_literal_rows: tuple[int, ...] = ()) -> Path:
    """``{category}_5.json.gz`` (or ``{category}.json.gz``) and ``meta_{category}.json.gz``, gzip, one object a line.

    ``python_literal_rows``: meta rows written as Python dict literals, as older dumps hold.
    """
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{category}_5.json.gz" if five_core else f"{category}.json.gz"
    (folder / name).write_bytes(gzip.compress(_json_lines(reviews).encode()))
    if meta is not None:
        text = _json_lines(meta, python_literal_rows=python_literal_rows)
        (folder / f"meta_{category}.json.gz").write_bytes(gzip.compress(text.encode()))
    return folder


REVIEWS_2023 = [
    {"rating": 5.0, "title": "Loved it", "text": "Great", "images": [], "asin": "B01V1", "parent_asin": "P01",
     "user_id": "U1", "timestamp": 1588687728923, "helpful_vote": 2, "verified_purchase": True},
    {"rating": 2.0, "title": "No", "text": "Bad", "images": [], "asin": "B01V2", "parent_asin": "P01",
     "user_id": "U2", "timestamp": 1588687729999, "helpful_vote": 0, "verified_purchase": False},
    {"rating": 4.0, "title": "Fine", "text": "Fine", "images": [], "asin": "B02", "parent_asin": "P02",
     "user_id": "U1", "timestamp": 1600000000500, "helpful_vote": 0, "verified_purchase": True},
]
META_2023 = [
    {"main_category": "All Beauty", "title": "Lip Balm", "average_rating": 4.5, "rating_number": 10,
     "features": ["Soft", "Vegan"], "description": ["Keeps lips soft."], "price": None,
     "images": [{"thumb": "https://x"}], "videos": [], "store": "Acme", "categories": ["Beauty", "Lips"],
     "details": {"Brand": "Acme"}, "parent_asin": "P01", "bought_together": None},
    {"main_category": "All Beauty", "title": "Soap", "average_rating": 4.0, "rating_number": 1,
     "features": [], "description": [], "price": 3.5, "images": [], "videos": [], "store": None,
     "categories": [], "details": {}, "parent_asin": "P02", "bought_together": None},
]


def write_amazon_2023(folder: Path, category: str = "All_Beauty", reviews=REVIEWS_2023, meta=META_2023, *,
                      gz: bool = False) -> Path:
    """``{category}.jsonl`` and ``meta_{category}.jsonl`` (``.jsonl.gz`` with ``gz``), as on the 2023 site."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".jsonl.gz" if gz else ".jsonl"
    for name, records in ((category, reviews), (f"meta_{category}", meta)):
        if records is None:
            continue
        data = _json_lines(records).encode()
        (folder / f"{name}{suffix}").write_bytes(gzip.compress(data) if gz else data)
    return folder
