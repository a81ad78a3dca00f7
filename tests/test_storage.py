"""One place for locations: joining keeps a URI's query string last, and the same operations work on a local
path, a file:// URI and an s3:// URI with a query string (a real S3 API: moto on loopback)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys import storage
from recsys.data.loaders import files
from recsys.errors import ConfigError, DataError
from recsys.report import locations
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


# ---------------------------------------------------------------- one set of operations, three kinds of location


@pytest.fixture(params=["local", "file", "s3"])
def root(request, tmp_path):
    """A fresh empty directory named three ways: a local path, a file:// URI, an s3:// URI with a query string."""
    if request.param == "local":
        return str(tmp_path / "root")
    if request.param == "file":
        return (tmp_path / "root").as_uri()
    s3_root, _ = request.getfixturevalue("s3_location")
    return storage.join(s3_root, request.node.name.replace("[", "-").strip("]"))


def _query(location: str) -> str:
    return storage.split_query(location)[1]


def test_joined_locations_keep_the_root_query_string_last(root):
    child = storage.join(root, "run-1", "metrics", "part-0.parquet")
    assert _query(child) == _query(root) and (not storage.is_uri(root) or child.endswith("part-0.parquet" + _query(root)))
    assert storage.basename(child) == "part-0.parquet"
    assert storage.parent(storage.parent(child)) == storage.join(root, "run-1")
    assert str(as_location(root) / "run-1" / "metrics" / "part-0.parquet") == child


def test_written_files_are_found_read_and_sized(root):
    storage.write_bytes(storage.join(root, "a.txt"), b"alpha")
    storage.write_text(storage.join(root, "sub", "b.txt"), "beta")
    assert storage.exists(root) and storage.is_dir(root) and storage.is_dir(storage.join(root, "sub"))
    assert storage.exists(storage.join(root, "a.txt")) and not storage.is_dir(storage.join(root, "a.txt"))
    assert not storage.exists(storage.join(root, "missing.txt"))
    assert storage.file_size(storage.join(root, "a.txt")) == 5
    with pytest.raises(FileNotFoundError):
        storage.file_size(storage.join(root, "missing.txt"))
    assert storage.read_bytes(storage.join(root, "a.txt")) == b"alpha"
    assert storage.read_text(storage.join(root, "sub", "b.txt")) == "beta"

    flat = storage.list_files(root)
    assert [(e.name, e.size) for e in flat] == [("a.txt", 5), ("sub/", 0)]
    assert [e.location for e in flat] == [storage.join(root, "a.txt"), storage.join(root, "sub/")]
    deep = storage.list_files(root, recursive=True)
    assert [e.name for e in deep] == ["a.txt", "sub/b.txt"]
    assert storage.read_text(deep[1].location) == "beta" and _query(deep[1].location) == _query(root)
    assert storage.list_names(root) == ["a.txt"] and storage.list_names(storage.join(root, "nowhere")) == []
    with pytest.raises(FileNotFoundError):
        storage.list_files(storage.join(root, "nowhere"))
    # the data loaders and the report see the same files through storage
    assert [e.name for e in files.list_files(root)] == ["a.txt", "sub/"]
    assert files.file_size(storage.join(root, "a.txt")) == 5
    assert [p.name for p in locations.children(as_location(root))] == ["a.txt", "sub"]
    assert locations.read_text(as_location(root) / "sub" / "b.txt") == "beta"


def test_overwrites_and_uploads_appear_whole_with_no_temporary_names_left(root, tmp_path):
    target = storage.join(root, "runs", "state.json")
    storage.write_bytes(target, b"old")
    storage.write_bytes(target, b"new content")
    locations.write_text_atomic(as_location(storage.join(root, "runs", "note.txt")), "note")
    source = tmp_path / "model.pt"
    source.write_bytes(b"\x00weights")
    assert storage.upload(source, storage.join(root, "runs", "model.pt")) == storage.join(root, "runs", "model.pt")
    assert storage.read_bytes(target) == b"new content"
    assert [e.name for e in storage.list_files(root, recursive=True)] == ["runs/model.pt", "runs/note.txt",
                                                                         "runs/state.json"]
    back = storage.download(storage.join(root, "runs", "model.pt"), tmp_path / "copy" / "model.pt")
    assert back.read_bytes() == b"\x00weights" and sorted(p.name for p in back.parent.iterdir()) == ["model.pt"]
    assert storage.delete(target) and not storage.delete(target) and not storage.exists(target)


def test_a_failed_local_write_leaves_neither_the_file_nor_a_temporary(tmp_path):
    target = tmp_path / "out" / "table.parquet"

    def half_then_fail(handle):
        handle.write(b"PAR1 half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        storage.publish_atomic(target, half_then_fail)
    assert list(target.parent.iterdir()) == []
    storage.write_bytes(str(target), b"whole")
    with pytest.raises(OSError, match="disk full"):
        storage.publish_atomic(target, half_then_fail)
    assert target.read_bytes() == b"whole" and [p.name for p in target.parent.iterdir()] == ["table.parquet"]


def test_an_object_store_filesystem_is_opened_once_per_bucket_and_query(s3_location):
    s3_root, _ = s3_location
    fs_a, path_a = storage.resolve(storage.join(s3_root, "a"))
    fs_b, path_b = storage.resolve(storage.join(s3_root, "b", "c%20d"))
    assert fs_a is fs_b and (path_a, path_b) == (f"{BUCKET}/root/a", f"{BUCKET}/root/b/c d")
    assert storage.resolve("s3://other-bucket/x?region=eu-west-1")[0] is not fs_a


def test_a_location_pyarrow_cannot_open_names_the_setting_and_the_input_file():
    with pytest.raises(ConfigError, match="report.dir") as err:
        storage.resolve("nosuchscheme://bucket/x", setting="report.dir")
    assert "nosuchscheme://bucket/x" in str(err.value) and "What to do" in str(err.value)
    with pytest.raises(DataError, match="nosuchscheme://bucket/x") as err:
        files.list_files("nosuchscheme://bucket/x")
    assert "cannot open this location" in str(err.value)
