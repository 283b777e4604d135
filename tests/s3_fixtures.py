"""A real S3 endpoint for the tests: moto's server on a free localhost port (tests/conftest.py
imports its fixtures, so every test package can ask for it).

One server for the session (it starts in a few milliseconds, but its first requests import
moto's S3 backend); each test writes under a prefix of its own in one bucket. Every request the
server answers is recorded, so tests can count what a claim costs.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

_REQUEST = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # werkzeug colours the request line of an error


class _RequestLog(logging.Handler):
    """Werkzeug's access log of the moto server, as (method, path, status)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.requests: list[tuple[str, str, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = _REQUEST.search(_COLOUR.sub("", record.getMessage()))
        if found:
            self.requests.append((found["method"], found["path"], int(found["status"])))


@dataclass
class S3Endpoint:
    """The moto server: its URL, its bucket, the environment a client needs, its request log."""

    url: str
    bucket: str
    env: dict[str, str]
    log: _RequestLog = field(repr=False)

    def url_for(self, name: str) -> str:
        """A fresh ``s3://`` URL under this endpoint's bucket (a prefix per call)."""
        return f"s3://{self.bucket}/{name}-{uuid.uuid4().hex[:8]}/s.zarr"

    def mark(self) -> int:
        """The request count so far (pass it to :meth:`since`)."""
        return len(self.log.requests)

    def since(self, mark: int) -> list[tuple[str, str, int]]:
        """The requests answered after ``mark``: (method, path, status)."""
        return self.log.requests[mark:]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    """moto's S3 server on 127.0.0.1 (a free port), with a bucket; dummy credentials are in the
    environment for the session (restored after it). The endpoint itself is not: tests name it
    through ``AWS_ENDPOINT_URL`` (:func:`s3_env`) or ``storage_options``."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    log = _RequestLog()
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.addHandler(log)
    previous_level = werkzeug.level
    werkzeug.setLevel(logging.INFO)
    werkzeug.propagate = False  # the access log is counted, not printed
    credentials = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    endpoint = S3Endpoint(f"http://{host}:{port}", f"usam-{uuid.uuid4().hex[:8]}", credentials, log)
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in credentials.items():
                patch.setenv(key, value)
            import s3fs

            s3fs.S3FileSystem(endpoint_url=endpoint.url).mkdir(endpoint.bucket)
            yield endpoint
    finally:
        werkzeug.removeHandler(log)
        werkzeug.setLevel(previous_level)
        werkzeug.propagate = True
        server.stop()


@pytest.fixture()
def s3_env(s3_endpoint: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> S3Endpoint:
    """The endpoint named by ``AWS_ENDPOINT_URL`` for this test, as s3fs users configure it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint.url)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)  # it would take precedence
    return s3_endpoint
