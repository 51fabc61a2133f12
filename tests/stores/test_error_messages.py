"""Errors a user meets are georeader's, name the URL, say what to do, and stay short
(issue 19, item 2).

Before: a 404's traceback was 96 lines (the server's HTML page and Rust's debug dump,
twice); `az://` without an account raised obstore's raw `GenericError` with no URL;
S3 without credentials named the instance-metadata URL but not what to do.
"""

from __future__ import annotations

import functools
import http.server
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

import daskcog
from georeader.errors import (
    AccessDeniedError,
    GeoreaderError,
    ObjectNotFoundError,
    StoreConfigError,
    StoreReadError,
)
from georeader.io import first_line, map_store_error

HTML_404 = (
    "Object at location missing.tif not found: Error performing GET http://h/missing.tif in "
    "3.7ms - Server returned non-2xx status code: 404 Not Found: <!DOCTYPE HTML>\n<html lang="
    '"en">\n<body><p>Error code: 404</p></body></html>\n\nDebug source:\nNotFound {\n    path: '
    '"missing.tif",\n}'
)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def html_server(tmp_path: Path) -> Iterator[str]:
    """Python's own file server: its 404 carries an HTML page, like most web servers'."""
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_404_traceback_is_short_and_has_no_page(html_server: str) -> None:
    url = f"{html_server}/missing.tif"
    with pytest.raises(ObjectNotFoundError) as info:
        daskcog.open(url)
    assert url in str(info.value)
    text = "".join(traceback.format_exception(info.value))
    assert "<!DOCTYPE" not in text and "<html" not in text and "Debug source" not in text
    assert len(text.splitlines()) < 45, text
    assert "<!DOCTYPE" in info.value.detail  # type: ignore[attr-defined] # kept for debugging


def test_first_line_drops_the_response_body() -> None:
    assert first_line(RuntimeError(HTML_404)).endswith("status code: 404 Not Found")


def test_mapped_cause_is_one_line_without_frames() -> None:
    try:
        raise RuntimeError(HTML_404)
    except RuntimeError as exc:
        mapped = map_store_error(exc, "http://h/missing.tif", "opening the header")
        cause = exc
    assert isinstance(mapped, ObjectNotFoundError)
    assert str(cause).count("\n") == 0 and cause.__traceback__ is None


def test_azure_without_account_is_a_typed_error_naming_the_url() -> None:
    with pytest.raises(StoreConfigError, match=r"az://container/a\.tif.*account_name=") as info:
        daskcog.open("az://container/a.tif")
    assert isinstance(info.value, GeoreaderError) and isinstance(info.value, ValueError)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_bad_option_value_is_a_typed_error() -> None:
    with pytest.raises(StoreConfigError, match=r"s3://bucket/a\.tif.*maybe"):
        daskcog.open("s3://bucket/a.tif", skip_signature="maybe")


def test_no_credentials_says_what_to_do() -> None:
    message = (
        "Generic S3 error: Error performing PUT http://169.254.169.254/latest/api/token in 1ms "
        "- Server returned non-2xx status code: 403 Forbidden: resolve_deny"
    )
    mapped = map_store_error(RuntimeError(message), "s3://bucket/a.tif", "opening the header")
    assert isinstance(mapped, AccessDeniedError)
    assert "skip_signature=True" in str(mapped) and "credentials" in str(mapped)
    assert "resolve_deny" not in str(mapped)


def test_denied_suggests_skip_signature() -> None:
    mapped = map_store_error(
        PermissionError("403 Forbidden"), "s3://bucket/a.tif", "reading tile (0, 0)"
    )
    assert isinstance(mapped, AccessDeniedError) and "skip_signature=True" in str(mapped)


def test_throttling_suggests_max_concurrency() -> None:
    mapped = map_store_error(
        OSError("Server returned non-2xx status code: 503 Service Unavailable: SlowDown"),
        "s3://bucket/a.tif",
        "reading tile (0, 0)",
    )
    assert isinstance(mapped, StoreReadError) and "max_concurrency=" in str(mapped)


def test_hint_said_once_when_mapped_again() -> None:
    first = map_store_error(
        OSError("Server returned non-2xx status code: 503 Service Unavailable"),
        "s3://bucket/a.tif", "fetching bytes",
    )
    again = map_store_error(TypeError(str(first)), "s3://bucket/a.tif", "reading window")
    assert str(again).count("max_concurrency=") == 1
