"""Fixtures of the daskcog.load tests: the catalogue's COGs on the project's HTTP and S3
servers (127.0.0.1, started by the tests), and STAC items pointing at them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stac import catalogue
from tests.stores.helpers import s3_options  # noqa: F401 - shared with the store tests

HTTP_OPTIONS = {"client_options": {"allow_http": True}}


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.import_plugin("tests.servers.fixtures")


@pytest.fixture(autouse=True)
def fresh_caches():
    """Each test counts its own requests: this process's headers and tile bytes forgotten."""
    import daskcog
    from georeader.io import RANGE_CACHE

    daskcog.cache_clear()
    RANGE_CACHE.clear()
    yield


@pytest.fixture(scope="session")
def stac_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("stac-cogs")
    return folder, catalogue.write_files(folder)


@pytest.fixture(scope="session")
def http_base(http_server_session, stac_files) -> str:
    """Base URL of the catalogue's files on the HTTP range server."""
    _, files = stac_files
    for rel, path in files.items():
        http_server_session.put_file(path, f"stac/{rel}")
    return f"{http_server_session.url}/stac"


@pytest.fixture
def http_items(http_server, http_base) -> list[dict]:
    """Item dicts over the HTTP server (request log cleared for each test)."""
    return catalogue.item_dicts(http_base)


@pytest.fixture(scope="session")
def s3_base(s3_server, s3_bucket, stac_files) -> str:
    _, files = stac_files
    for rel, path in files.items():
        s3_server.upload(s3_bucket, f"stac/{rel}", path)
    return f"s3://{s3_bucket}/stac"


def header_gets(server) -> int:
    """GETs the HTTP server saw (every one of them on the client, when no compute ran)."""
    return len(server.requests("GET"))
