"""Fixtures of the cluster tests: the shared moto S3 server (tests/conftest.py) with the bucket they write to."""

from __future__ import annotations

import pytest

from tests.moto_s3 import aws_variables, s3_client

__all__ = ["BUCKET", "aws_variables", "s3_keys"]

BUCKET = "recsys-shared"


@pytest.fixture(scope="module")
def s3_endpoint(s3_endpoint):
    """The module's moto S3 server, holding one empty bucket ``BUCKET``; yields its URL."""
    s3_client(s3_endpoint).create_bucket(Bucket=BUCKET)
    return s3_endpoint


def s3_keys(endpoint: str, prefix: str) -> list[str]:
    """Every object key under ``prefix`` in the bucket, sorted, directory markers left out (listed with boto3)."""
    client = s3_client(endpoint)
    keys, token = [], None
    while True:
        page = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix, **({"ContinuationToken": token} if token else {}))
        keys += [item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/")]  # no markers
        if not page.get("IsTruncated"):
            return sorted(keys)
        token = page["NextContinuationToken"]
