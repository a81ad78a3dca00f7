"""How much the item text alone says about a user's cold test items: an upper bound for text models.

For every test rating of an item without a training rating, rank every catalogue item by the
cosine between its text vector (the embed stage's, ``benchmarks.quality``'s template) and the
mean text vector of the user's training items, training items left out, and report where the
cold item lands. When the median rank is in the thousands, no model that scores cold items from
this text can put them in a top 10.

    .venv/bin/python -m benchmarks.cold_text_rank --dataset ../shared/datasets/ml-latest-small

>>> cold_item_ranks(np.eye(3, dtype=np.float32), np.array([0, 1]), np.array([0]), [(0, 2)])
array([1])
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def cold_item_ranks(text: np.ndarray, indptr: np.ndarray, items: np.ndarray, pairs) -> np.ndarray:
    """Rank (0 = first) of each ``(user, cold item)`` among all items by cosine to the user's mean training
    text vector, the user's training items left out; ties count against the cold item."""
    import torch
    import torch.nn.functional as F

    vectors = F.normalize(torch.as_tensor(text, dtype=torch.float32), dim=1)          # (N, T)
    ranks = []
    for user, item in pairs:
        history = torch.as_tensor(items[indptr[user]:indptr[user + 1]], dtype=torch.long)
        query = F.normalize(vectors[history].mean(0), dim=0)                          # (T,)
        scores = vectors @ query                                                       # (N,)
        scores[history] = -torch.inf
        ranks.append(int((scores >= scores[item]).sum()) - 1)
    return np.array(ranks, dtype=np.int64)


def main(argv=None) -> dict:
    from benchmarks.quality import item_vectors, prepared
    from recsys.train.data import TrainingData

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--protocol", default="random")
    parser.add_argument("--ratios", type=float, nargs=3, default=[0.8, 0.1, 0.1])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--implicit-threshold", type=float, default=None)
    parser.add_argument("--min-core", type=int, default=0)
    parser.add_argument("--cache-dir", default="data_cache")
    args = parser.parse_args(argv)
    ds = prepared(args, args.seed)
    data = TrainingData.from_prepared(ds)
    text = item_vectors(ds, args.cache_dir)
    trained = np.zeros(data.n_items, dtype=bool)
    trained[data.items] = True
    test = ds.split("test").drop_nulls(["user_idx", "item_idx"])
    pairs = [(u, i) for u, i in zip(test["user_idx"].to_list(), test["item_idx"].to_list())
             if u < data.n_users and not trained[i] and data.indptr[u + 1] > data.indptr[u]]
    ranks = cold_item_ranks(text, data.indptr, data.items, pairs)
    out = {"cold_test_ratings": len(pairs), "users": len({u for u, _ in pairs}), "n_items": data.n_items,
           "median_rank": float(np.median(ranks)) if len(ranks) else None,
           "top10_share": float((ranks < 10).mean()) if len(ranks) else None,
           "top100_share": float((ranks < 100).mean()) if len(ranks) else None}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
