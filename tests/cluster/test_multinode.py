"""Three Ray nodes on this machine: work spreads over nodes, a node lost mid-stage loses and duplicates nothing.

The cluster (``ray.cluster_utils.Cluster``: a head and two worker nodes, one CPU each)
lives in a driver process of its own (tests/cluster/multinode_driver.py), so it
never meets the shared test session; this test reads the driver's results.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.cluster.raycluster import REPO, ray_env

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("multinode") / "results.json"
    done = subprocess.run([sys.executable, "-m", "tests.cluster.multinode_driver", str(out)], cwd=REPO,
                          env=ray_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-6000:]
    return json.loads(out.read_text())


def test_the_cluster_has_a_head_and_two_worker_nodes(results):
    assert len(results["nodes"]) == 3 and results["head"] in results["nodes"]


def test_training_with_two_workers_on_two_nodes_completes(results):
    train = results["train"]
    assert train["status"] == "completed" and train["epochs"] == 2 and train["path_exists"]
    assert len(train["task_nodes"]) == 2, train["task_nodes"]


def test_evaluation_survives_losing_a_worker_node_mid_stage_with_exact_rows(results):
    evaluate = results["evaluate"]
    removed = evaluate["removed"]
    assert removed, "no evaluator ran on a worker node"
    assert removed["node_id"] != results["head"]
    assert evaluate["started_at"] < removed["at"] < evaluate["finished_at"], "the node went after the stage ended"
    assert len(evaluate["task_nodes"]) >= 2, evaluate["task_nodes"]
    for split, rows in evaluate["splits"].items():
        assert len(rows["users"]) == len(set(rows["users"])), f"{split}: a user evaluated twice"
        assert sorted(rows["users"]) == rows["expected_users"], f"{split}: users lost or added"
        assert rows["same_topk"] and rows["same_values"], split


def test_embedding_runs_on_several_nodes_and_survives_losing_one_mid_stage_with_one_vector_per_item(results):
    embed = results["embed_kill"]
    assert len(embed["task_nodes"]) >= 2, embed["task_nodes"]
    removed = embed["removed"]
    assert removed and removed["node_id"] != results["head"], "no encoder ran on a worker node"
    assert embed["started_at"] < removed["at"] < embed["finished_at"], "the node went after the stage ended"
    assert sorted(embed["item_ids"]) == embed["expected_ids"]                 # each item once, none lost
    assert embed["n_cached_hashes"] == embed["n_texts"]                      # every text has its vector cached
    assert embed["max_abs_diff"] < 1e-5
