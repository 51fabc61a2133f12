"""pytest fixtures for the project's real test servers.

Load with ``pytest_plugins = ["tests.servers.fixtures"]`` in the root conftest
(tests/servers/conftest.py also registers it, idempotently, for its own tests).

Session-scoped servers (started once, on first use):

* ``s3_server`` - :class:`~tests.servers.s3_server.S3Server` (SeaweedFS, SigV4 checked)
* ``s3_bucket`` - name of a bucket created on it (``"daskcog-test"``)
* ``azurite_server`` - :class:`~tests.servers.azurite_server.AzuriteServer` (installed
  from npm into ``.cache/azurite`` on first use; needs node and npm)
* ``azurite_container`` - name of a container created on it (``"daskcog-test"``)
* ``http_server_session`` - :class:`~tests.servers.http_server.RangeHTTPServer`
  serving a session temp directory
* ``fault_proxy_s3_session`` / ``fault_proxy_http_session`` - :class:`FaultProxy`
  in front of the S3 / HTTP server

Function-scoped views that reset per-test state before and after each test:

* ``http_server`` - the session HTTP server with its request log, forbidden set
  and delay cleared; add files with ``http_server.put_file(path, relpath=None)``,
  ``http_server.put_bytes(relpath, data)`` or :func:`copy_to_http_server`
* ``fault_proxy_s3`` / ``fault_proxy_http`` - the session proxies, faults cleared,
  counters zeroed and RNG re-seeded

If a server cannot start (e.g. the ``weed`` binary is missing) the fixture
*fails* with the reason; it never skips.  Environment: ``DASKCOG_WEED`` (path of
the ``weed`` binary), ``DASKCOG_S3_MODE`` (``mini``, the default, or ``server``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .azurite_server import AzuriteServer
from .fault_proxy import FaultProxy
from .http_server import RangeHTTPServer
from .s3_server import S3Server

DEFAULT_BUCKET = "daskcog-test"


def copy_to_http_server(server: RangeHTTPServer, local_path: str | os.PathLike,
                        relpath: str | None = None) -> str:
    """Copy a file below the HTTP server's root; return its URL."""
    return server.put_file(local_path, relpath)


def _serving(start: Callable[[], Any], what: str) -> Iterator[Any]:
    """Start a server, yield it, stop it; a server that cannot start FAILS the test."""
    try:
        server = start()
    except Exception as exc:  # noqa: BLE001 - report any start-up failure as a test failure
        pytest.fail(f"could not start {what}: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """SeaweedFS S3 server (session): ``.endpoint``, ``.access_key``, ``.secret_key``,
    ``.region``, ``.store(bucket, endpoint=None, **kw)``, ``.create_bucket``, ``.upload``."""
    yield from _serving(
        lambda: S3Server(mode=os.environ.get("DASKCOG_S3_MODE", "mini")),
        "the S3 test server (SeaweedFS)",
    )


@pytest.fixture(scope="session")
def s3_bucket(s3_server: S3Server) -> str:
    """Name of a bucket on ``s3_server`` (session), created on first use."""
    s3_server.create_bucket(DEFAULT_BUCKET)
    return DEFAULT_BUCKET


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[AzuriteServer]:
    """Azurite blob service (session): ``.endpoint``, ``.options()``, ``.store(container)``,
    ``.create_container``, ``.container_sas``."""
    yield from _serving(AzuriteServer, "Azurite (the Azure Storage emulator)")


@pytest.fixture(scope="session")
def azurite_container(azurite_server: AzuriteServer) -> str:
    """Name of a container on ``azurite_server`` (session), created on first use."""
    azurite_server.create_container(DEFAULT_BUCKET)
    return DEFAULT_BUCKET


@pytest.fixture(scope="session")
def http_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RangeHTTPServer]:
    """Range-capable HTTP server (session) serving a session temp directory."""
    root = tmp_path_factory.mktemp("http-root")
    try:
        server = RangeHTTPServer(root)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"could not start the range HTTP test server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def http_server(http_server_session: RangeHTTPServer) -> Iterator[RangeHTTPServer]:
    """The session HTTP server with request log / forbidden set / delay reset around the test.

    Add files with ``put_file(local_path, relpath=None)`` or ``put_bytes(relpath, data)``
    (both return the URL); ``root_dir`` is the directory served.
    """
    http_server_session.reset()
    yield http_server_session
    http_server_session.reset()


def _proxy(host: str, port: int, what: str) -> FaultProxy:
    try:
        return FaultProxy(host, port)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"could not start the fault proxy in front of {what}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def fault_proxy_s3_session(s3_server: S3Server) -> Iterator[FaultProxy]:
    """FaultProxy in front of ``s3_server`` (session); prefer ``fault_proxy_s3``."""
    proxy = _proxy(s3_server.host, s3_server.port, "the S3 server")
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def fault_proxy_http_session(http_server_session: RangeHTTPServer) -> Iterator[FaultProxy]:
    """FaultProxy in front of the HTTP server (session); prefer ``fault_proxy_http``."""
    proxy = _proxy(http_server_session.host, http_server_session.port, "the HTTP server")
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def fault_proxy_s3(fault_proxy_s3_session: FaultProxy) -> Iterator[FaultProxy]:
    """Proxy to the S3 server, faults cleared and counters zeroed around the test.

    Use ``s3_server.store(bucket, endpoint=fault_proxy_s3.url)``; SigV4 stays valid.
    """
    fault_proxy_s3_session.reset()
    yield fault_proxy_s3_session
    fault_proxy_s3_session.reset()


@pytest.fixture
def fault_proxy_http(fault_proxy_http_session: FaultProxy,
                     http_server: RangeHTTPServer) -> Iterator[FaultProxy]:
    """Proxy to the HTTP server, faults cleared and counters zeroed around the test.

    Use ``HTTPStore.from_url(fault_proxy_http.url + "/dir", client_options=...)``.
    """
    fault_proxy_http_session.reset()
    yield fault_proxy_http_session
    fault_proxy_http_session.reset()


__all__ = [
    "DEFAULT_BUCKET",
    "copy_to_http_server",
    "s3_server",
    "s3_bucket",
    "azurite_server",
    "azurite_container",
    "http_server_session",
    "http_server",
    "fault_proxy_s3_session",
    "fault_proxy_http_session",
    "fault_proxy_s3",
    "fault_proxy_http",
]
