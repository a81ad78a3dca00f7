"""Fixtures of the cluster tests: a real S3 API on loopback (moto) with dummy credentials."""

from __future__ import annotations

import pytest

BUCKET = "recsys-shared"


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 (an ephemeral port) holding one empty bucket; yields its URL."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
    yield url
    server.stop()


def aws_variables(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture
def aws_env(s3_endpoint, monkeypatch):
    """This process talks to the moto server through the usual AWS_* variables."""
    for name, value in aws_variables(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    return s3_endpoint


def s3_keys(endpoint: str, prefix: str) -> list[str]:
    """Every object key under ``prefix`` in the bucket, sorted, directory markers left out (listed with boto3)."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    keys, token = [], None
    while True:
        page = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix, **({"ContinuationToken": token} if token else {}))
        keys += [item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/")]  # no markers
        if not page.get("IsTruncated"):
            return sorted(keys)
        token = page["NextContinuationToken"]
