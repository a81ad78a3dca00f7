"""One place for locations: joining keeps a URI's query string last, on a real S3 API (moto on loopback)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys import storage
from recsys.data.loaders import files
from recsys.report.locations import as_location
from tests.moto_s3 import REGION, s3_client

BUCKET = "recsys-storage"
QUERY = "?endpoint_override=127.0.0.1:9000&scheme=http"


@pytest.mark.parametrize("location, parts, expected", [
    ("s3://b/dir" + QUERY, ("run-1", "metrics"), "s3://b/dir/run-1/metrics" + QUERY),
    ("s3://b/dir/" + QUERY, ("/run-1/",), "s3://b/dir/run-1" + QUERY),
    ("gs://b", ("x.parquet",), "gs://b/x.parquet"),
    ("file:///tmp/r", ("a", "b"), "file:///tmp/r/a/b"),
])
def test_join_puts_parts_before_the_query_string(location, parts, expected):
    assert storage.join(location, *parts) == expected


def test_parent_basename_and_the_report_paths_agree_on_the_query():
    child = storage.join("s3://b/reports" + QUERY, "run-1", "runs.parquet")
    assert storage.parent(child) == "s3://b/reports/run-1" + QUERY
    assert storage.basename(child) == files.basename(child) == "runs.parquet"
    assert str(as_location("s3://b/reports" + QUERY) / "run-1" / "runs.parquet") == child
    assert files.join is storage.join and files.is_uri is storage.is_uri


names = st.text(alphabet="abcxyz0123-_.", min_size=1, max_size=8).filter(lambda n: n.strip("."))


@given(parts=st.lists(names, min_size=1, max_size=4), query=st.sampled_from(["", "?region=x", QUERY]))
def test_a_joined_uri_keeps_its_query_and_its_parts_in_order(parts, query):
    joined = storage.join("s3://bucket/root" + query, *parts)
    base, kept = storage.split_query(joined)
    assert kept == query and base == "s3://bucket/root/" + "/".join(parts)
    assert storage.parent(joined) == storage.join("s3://bucket/root" + query, *parts[:-1])


@pytest.fixture
def s3_location(s3_endpoint, monkeypatch):
    """A bucket on the moto server, named by a URI whose query string alone says where S3 is."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_EC2_METADATA_DISABLED", "true")):
        monkeypatch.setenv(name, value)
    client = s3_client(s3_endpoint)
    if BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=BUCKET)
    return f"s3://{BUCKET}/root?endpoint_override={s3_endpoint}&scheme=http&region={REGION}", client


def test_writes_below_a_query_string_uri_land_under_the_right_keys(s3_location, tmp_path):
    root, client = s3_location
    target = storage.join(root, "run-1", "runs", "part-0.json")
    storage.write_bytes(target, b'{"ok": true}')
    local = tmp_path / "ratings.csv"
    local.write_bytes(b"userId,movieId,rating,timestamp\n1,2,4.0,964982703\n")
    storage.upload(local, storage.join(root, "data", "ratings.csv"))
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="root/")["Contents"])
    assert keys == ["root/data/ratings.csv", "root/run-1/runs/part-0.json"]
    assert storage.read_bytes(target) == b'{"ok": true}'
    assert storage.exists(target) and storage.list_names(storage.join(root, "run-1", "runs")) == ["part-0.json"]
    # the data loaders read through the same locations
    entries = files.list_files(storage.join(root, "data"))
    assert [e.name for e in entries] == ["ratings.csv"] and entries[0].location == storage.join(root, "data",
                                                                                                 "ratings.csv")
    assert files.read_bytes(entries[0].location).startswith(b"userId,movieId")
