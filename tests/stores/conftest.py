"""Fixtures of the real-object-store tests: the project's servers on 127.0.0.1, no mocks.

The server fixtures (`s3_server`, `s3_bucket`, `http_server`, `fault_proxy_s3`,
`fault_proxy_http`, ...) come from `tests.servers.fixtures`. It is registered
here with a `pytest_configure` hook, not `pytest_plugins = [...]`: pytest 9
refuses `pytest_plugins` in a conftest below the rootdir ("no longer
supported") as soon as the whole suite (`pytest tests`) is collected.
Registering the same plugin twice (tests/servers does it too) is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.cogfactory import cached_tiff
from tests.stores import helpers
from tests.stores.helpers import COG_SPEC, LEVELS, STRIPED_SPEC, RangeLogProxy


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.import_plugin("tests.servers.fixtures")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not helpers.REQUEST_COUNTS:
        return
    terminalreporter.section("requests seen by the proxy, per scenario (tests/stores)")
    for name, entry in helpers.REQUEST_COUNTS.items():
        terminalreporter.write_line(f"{name}: {entry}")


# ------------------------------------------------------------------------------ files
@pytest.fixture(scope="session")
def cog_path(tiff_cache: Path) -> Path:
    return cached_tiff(COG_SPEC, tiff_cache)


@pytest.fixture(scope="session")
def striped_path(tiff_cache: Path) -> Path:
    return cached_tiff(STRIPED_SPEC, tiff_cache)


@pytest.fixture(scope="session")
def reference(cog_path: Path) -> dict[int, np.ndarray]:
    """RasterioReader (GDAL) on the local copy, per level."""
    from georeader import RasterioReader

    out = {}
    for level in LEVELS:
        with RasterioReader(cog_path, overview_level=level) as ref:
            out[level] = ref.load().values
    return out


@pytest.fixture(scope="session")
def striped_reference(striped_path: Path) -> np.ndarray:
    from georeader import RasterioReader

    with RasterioReader(striped_path) as ref:
        return ref.load().values


@pytest.fixture(scope="session")
def cog_header_bytes(cog_path: Path) -> int:
    return helpers.header_bytes(cog_path)


# ------------------------------------------------------------------------------ objects
@pytest.fixture(scope="session")
def s3_cog(s3_server, s3_bucket: str, cog_path: Path) -> str:
    """s3:// URL of the COG uploaded to the SeaweedFS server."""
    key = f"stores/{COG_SPEC.id}.tif"
    s3_server.upload(s3_bucket, key, cog_path)
    return f"s3://{s3_bucket}/{key}"


@pytest.fixture(scope="session")
def http_cog_rel(http_server_session, cog_path: Path, striped_path: Path) -> str:
    """Path (below the HTTP root) of the COG; the striped file sits beside it as striped.tif."""
    # The range server listens with socketserver's default backlog of 5. A burst of
    # new connections (one per concurrent request through the proxy: ~70 for a
    # tile-by-tile read) overflows it; the dropped handshakes stall requests for
    # seconds and, measured, sometimes for obstore's whole 30 s timeout. Linux lets
    # listen() be called again to raise the backlog of a listening socket.
    # (The proper fix is `request_queue_size = 128` on tests/servers/http_server._Server.)
    http_server_session._httpd.socket.listen(128)
    http_server_session.put_file(cog_path, "stores/cog.tif")
    http_server_session.put_file(striped_path, "stores/striped.tif")
    return "stores/cog.tif"


# ------------------------------------------------------------------------------ proxies
@pytest.fixture(scope="session")
def range_proxy_s3_session(s3_server) -> Iterator[RangeLogProxy]:
    proxy = RangeLogProxy(s3_server.host, s3_server.port)
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def range_proxy_http_session(http_server_session) -> Iterator[RangeLogProxy]:
    proxy = RangeLogProxy(http_server_session.host, http_server_session.port)
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def range_proxy_s3(range_proxy_s3_session: RangeLogProxy) -> Iterator[RangeLogProxy]:
    """FaultProxy + Range log in front of the S3 server, reset around the test."""
    range_proxy_s3_session.reset()
    yield range_proxy_s3_session
    range_proxy_s3_session.reset()


@pytest.fixture
def range_proxy_http(
    range_proxy_http_session: RangeLogProxy, http_server
) -> Iterator[RangeLogProxy]:
    range_proxy_http_session.reset()
    yield range_proxy_http_session
    range_proxy_http_session.reset()


# ------------------------------------------------------------------------------ state
@pytest.fixture(autouse=True)
def fresh_process_state() -> Iterator[None]:
    """Every test starts without cached headers or recorded failures, with default retries."""
    import daskcog
    import georeader
    from daskcog.runtime import failures
    saved_retry = georeader.AsyncGeoTIFFReader.retry
    daskcog.cache_clear()
    georeader.forget_header_sizes()
    failures.clear_failures()
    yield
    georeader.AsyncGeoTIFFReader.retry = saved_retry
    daskcog.cache_clear()
    georeader.forget_header_sizes()
    failures.clear_failures()
