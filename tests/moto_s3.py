"""A real S3 API on loopback (moto's server) with dummy credentials, for tests of s3:// paths.

The fixtures ``s3_endpoint`` and ``aws_env`` in ``tests/conftest.py`` use these helpers; tests
that need a bucket create it through :func:`s3_client`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

REGION = "us-east-1"


def aws_variables(endpoint: str) -> dict[str, str]:
    """The AWS_* variables that point boto3, pyarrow and Ray workers at ``endpoint`` with dummy credentials."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}


def s3_client(endpoint: str):
    """A boto3 S3 client for ``endpoint`` with the dummy credentials."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (an ephemeral port); yields its URL and stops it afterwards."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
