"""Faults injected by a proxy in front of the real S3 and HTTP servers.

Transient faults (503 bursts, a seeded 30 % 503 rate, connection resets, bodies
cut short, 429, latency with jitter) must give a result bit-identical to GDAL's
on the local copy. Permanent ones must give a typed error naming the URL,
quickly: a permanent 503 within a bounded time (short retry policy), a 403 at
once with no retry. Every scenario records the requests the proxy saw; they are
printed at the end of the run.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import daskcog
from georeader import AccessDeniedError, AsyncGeoTIFFReader, StoreReadError
from georeader.io import RetryPolicy
from tests.stores.helpers import (
    COG_SPEC,
    HTTP_OPTIONS,
    elapsed,
    read_async,
    read_async_tiles,
    record_requests,
    run,
    s3_options,
    settle,
    tile_byte_ranges,
)

SHORT_STORE_RETRY = RetryPolicy(attempts=3, total_seconds=5).store_retry_config()
"""obstore: 2 retries within 5 s."""
SHORT_READ_RETRY = RetryPolicy(attempts=2, backoff=0.05, max_backoff=0.2, total_seconds=3)
"""Reader: one more attempt after a transient error."""


@dataclasses.dataclass
class Backend:
    name: str
    url: str
    options: dict
    proxy: object


@pytest.fixture(params=["s3", "http"])
def backend(request, s3_server, s3_cog, http_cog_rel, fault_proxy_s3, fault_proxy_http) -> Backend:
    """The COG behind a FaultProxy, over S3 or HTTP; proxy reset around the test."""
    if request.param == "s3":
        return Backend(
            "s3", s3_cog, s3_options(s3_server, endpoint=fault_proxy_s3.url), fault_proxy_s3
        )
    return Backend(
        "http", f"{fault_proxy_http.url}/{http_cog_rel}", dict(HTTP_OPTIONS), fault_proxy_http
    )


@pytest.fixture(params=["s3", "http"])
def range_backend(
    request, s3_server, s3_cog, http_cog_rel, range_proxy_s3, range_proxy_http
) -> Backend:
    """Like `backend`, through the proxy that can fail chosen byte ranges."""
    if request.param == "s3":
        return Backend(
            "s3", s3_cog, s3_options(s3_server, endpoint=range_proxy_s3.url), range_proxy_s3
        )
    return Backend(
        "http", f"{range_proxy_http.url}/{http_cog_rel}", dict(HTTP_OPTIONS), range_proxy_http
    )


@pytest.fixture
def short_reader_retry():
    saved = AsyncGeoTIFFReader.retry
    AsyncGeoTIFFReader.retry = SHORT_READ_RETRY
    try:
        yield SHORT_READ_RETRY
    finally:
        AsyncGeoTIFFReader.retry = saved


def _fresh_caches() -> None:
    import georeader

    daskcog.cache_clear()
    georeader.forget_header_sizes()


TRANSIENT = {
    "503-burst": {"fail_first": 6, "fail_status": 503},
    "503-rate-0.3": {"fail_rate": 0.3, "fail_status": 503, "seed": 11},
    "reset-burst": {"reset_first": 3},
    "reset-rate-0.2": {"reset_rate": 0.2, "seed": 5},
    "truncate-burst": {"truncate_first": 3},
    "truncate-rate-0.2": {"truncate_rate": 0.2, "seed": 7},
    "429-burst": {"fail_first": 4, "fail_status": 429, "retry_after": "0"},
    "latency-100ms-jitter-30ms": {"latency_ms": 100, "jitter_ms": 30, "seed": 3},
}


@pytest.mark.parametrize("scenario", list(TRANSIENT))
def test_transient_faults_give_identical_pixels(backend, reference, scenario):
    proxy = backend.proxy
    readers = {
        # one request set per tile: many requests, so rates and bursts hit header and tiles
        "async-per-tile": lambda: read_async_tiles(backend.url, **backend.options),
        "daskcog-threads": lambda: daskcog.open(backend.url, chunks=64, **backend.options)
        .data.compute(scheduler="threads"),
    }
    for name, read in readers.items():
        _fresh_caches()
        proxy.reset()
        proxy.configure(**TRANSIENT[scenario])
        got, seconds = elapsed(read)
        if isinstance(got, BaseException):
            raise got
        np.testing.assert_array_equal(got, reference[0])
        entry = record_requests(
            f"{backend.name} {scenario} {name}", proxy, seconds=round(seconds, 2)
        )
        assert seconds < 30
        if scenario.startswith("latency"):
            assert seconds >= 0.1
        elif "burst" in scenario:
            assert sum(entry["faults"].values()) >= 3, entry  # the faults did happen


def test_rate_faults_actually_fire(backend, reference):
    """Seeded 30 % 503s over many requests: faults happen, the result stays exact."""
    backend.proxy.configure(fail_rate=0.3, fail_status=503, seed=1)
    got = read_async_tiles(backend.url, **backend.options)
    np.testing.assert_array_equal(got, reference[0])
    stats = backend.proxy.stats()
    assert stats["faults"].get("status", 0) >= 5, stats
    assert stats["requests_total"] > 40


@pytest.mark.usefixtures("short_reader_retry")
def test_permanent_503_at_open_is_a_bounded_typed_error(backend):
    backend.proxy.configure(fail_rate=1.0, fail_status=503)
    opts = {**backend.options, "retry_config": SHORT_STORE_RETRY}
    exc, seconds = elapsed(lambda: read_async(backend.url, **opts))
    assert isinstance(exc, StoreReadError), repr(exc)
    assert backend.url in str(exc)
    assert seconds < 15, f"{seconds:.1f} s"
    # one retry layer: the reader's 2 attempts, obstore's own retries off (was 3 x 2 = 6)
    assert backend.proxy.requests_total == 2, backend.proxy.stats()
    record_requests(f"{backend.name} permanent 503, open (AsyncGeoTIFFReader)", backend.proxy,
                    seconds=round(seconds, 2))

    _fresh_caches()
    backend.proxy.reset_counters()
    exc, seconds = elapsed(lambda: daskcog.open(backend.url, chunks=64, **opts))
    assert isinstance(exc, StoreReadError), repr(exc)
    assert backend.url in str(exc)
    assert seconds < 15
    record_requests(f"{backend.name} permanent 503, daskcog.open", backend.proxy,
                    seconds=round(seconds, 2))


@pytest.mark.usefixtures("short_reader_retry")
def test_permanent_503_during_compute_is_a_bounded_typed_error(backend):
    opts = {**backend.options, "retry_config": SHORT_STORE_RETRY}
    arr = daskcog.open(backend.url, chunks=128, retry=SHORT_READ_RETRY, **opts)
    backend.proxy.reset_counters()
    backend.proxy.configure(fail_rate=1.0, fail_status=503)
    exc, seconds = elapsed(lambda: arr.data.compute(scheduler="threads"))
    settle(lambda: backend.proxy.requests_total)  # the other chunks' retries end too
    assert isinstance(exc, StoreReadError), repr(exc)
    assert backend.url in str(exc) and "window" in str(exc)
    assert seconds < 15, f"{seconds:.1f} s"
    record_requests(
        f"{backend.name} permanent 503, compute (threads, {arr.data.npartitions} chunks)",
        backend.proxy,
        seconds=round(seconds, 2),
    )


def test_403_at_open_is_access_denied_without_retry(backend):
    backend.proxy.configure(fail_rate=1.0, fail_status=403)
    exc, seconds = elapsed(lambda: read_async(backend.url, **backend.options))
    assert isinstance(exc, AccessDeniedError), repr(exc)
    assert backend.url in str(exc)
    assert seconds < 2
    assert backend.proxy.requests_total == 1, backend.proxy.stats()
    record_requests(f"{backend.name} injected 403, open", backend.proxy, seconds=round(seconds, 3))


def test_403_on_tiles_is_access_denied_without_retry(backend):
    """A read after a good open: the 403 costs exactly the requests of one attempt."""
    from rasterio.windows import Window

    async def go(fault: bool) -> tuple[object, int]:
        reader = await AsyncGeoTIFFReader.open(backend.url, **backend.options)
        backend.proxy.reset_counters()
        if fault:
            backend.proxy.configure(fail_rate=1.0, fail_status=403)
        try:
            await reader.read_window(Window(64, 32, 128, 64))  # 2 x 2 tiles, data and mask
            return None, backend.proxy.requests_total
        except Exception as exc:  # noqa: BLE001 - inspected below
            return exc, backend.proxy.requests_total

    _, clean = run(go(False))
    _fresh_caches()
    backend.proxy.reset()
    (exc, faulty), seconds = elapsed(lambda: run(go(True)))
    assert isinstance(exc, AccessDeniedError), repr(exc)
    assert backend.url in str(exc)
    assert seconds < 2
    assert faulty <= clean, f"{faulty} requests with 403 against {clean} without: retried"
    record_requests(f"{backend.name} injected 403, tile read", backend.proxy,
                    clean_requests=clean, seconds=round(seconds, 3))

    # the same through daskcog: the compute fails with the typed error, no retries
    backend.proxy.reset()
    arr = daskcog.open(backend.url, chunks=(2, 64, 64), **backend.options)
    part = arr.data[:, 32:96, 64:128]  # one chunk
    backend.proxy.reset()
    part.compute(scheduler="threads")
    clean = backend.proxy.requests_total
    backend.proxy.reset()
    backend.proxy.configure(fail_rate=1.0, fail_status=403)
    exc, seconds = elapsed(lambda: part.compute(scheduler="threads"))
    settle(lambda: backend.proxy.requests_total)
    assert isinstance(exc, AccessDeniedError), repr(exc)
    assert seconds < 2
    assert backend.proxy.requests_total <= clean


def test_latency_stays_correct_through_overviews(backend, reference):
    backend.proxy.configure(latency_ms=100, jitter_ms=30, seed=9)
    for level in (1, 2):
        _fresh_caches()
        got, seconds = elapsed(
            lambda level=level: read_async(backend.url, overview_level=level, **backend.options)
        )
        np.testing.assert_array_equal(got, reference[level])
        assert seconds >= 0.1
    record_requests(f"{backend.name} latency 100+-30 ms, overviews 1-2", backend.proxy)


# ------------------------------------------------------------------ errors="nodata"
@pytest.mark.usefixtures("short_reader_retry")
def test_errors_nodata_fills_failed_chunks_and_reports_them(range_backend, cog_path, reference):
    """Permanent 503 on the data tiles of tile rows 2-3 (pixel rows 64-127): with
    chunks of 64 x 64, exactly the 5 chunks of chunk row 1 fail; they come back
    as the fill value and each is listed in the failure report."""
    proxy = range_backend.proxy
    opts = {**range_backend.options, "retry_config": SHORT_STORE_RETRY}
    arr = daskcog.open(range_backend.url, chunks=(2, 64, 64), errors="nodata",
                       retry=SHORT_READ_RETRY, **opts)
    proxy.reset_counters()
    proxy.fail_ranges(tile_byte_ranges(cog_path, rows=lambda row: row in (2, 3)), status=503)
    got, seconds = elapsed(lambda: arr.data.compute(scheduler="threads"))
    if isinstance(got, BaseException):
        raise got
    assert seconds < 30
    expected_windows = {
        (c, 64, min(64, COG_SPEC.width - c), 64) for c in range(0, COG_SPEC.width, 64)
    }

    failed = arr.failures()
    assert {f.window for f in failed} == expected_windows, failed
    assert len(failed) == len(expected_windows)
    for f in failed:
        assert f.url == range_backend.url
        assert f.error_type == "StoreReadError"
        assert range_backend.url in f.message
    fill = arr.fill_value_default
    assert np.all(got[:, 64:128, :] == fill)
    np.testing.assert_array_equal(got[:, :64], reference[0][:, :64])
    np.testing.assert_array_equal(got[:, 128:], reference[0][:, 128:])
    record_requests(f"{range_backend.name} errors='nodata', permanent 503 on 10 tiles",
                    proxy, failed_chunks=len(failed), seconds=round(seconds, 2))

    # errors="raise" (the default) on the same faults: the typed error names URL and window
    raising = daskcog.open(range_backend.url, chunks=(2, 64, 64), retry=SHORT_READ_RETRY, **opts)
    with pytest.raises(StoreReadError, match="window") as info:
        raising.data[:, 64:128, :].compute(scheduler="threads")
    settle(lambda: proxy.requests_total)
    assert range_backend.url in str(info.value)


# ------------------------------------------------------------------ error classification
@pytest.fixture
def numbered_backend(backend, s3_server, s3_bucket, cog_path, http_server) -> Backend:
    """The COG under a path holding "404" and "403" (e.g. a tile grid's z/x/y names)."""
    rel = "stores/404/403.tif"
    if backend.name == "s3":
        s3_server.upload(s3_bucket, rel, cog_path)
        return dataclasses.replace(backend, url=f"s3://{s3_bucket}/{rel}")
    http_server.put_file(cog_path, rel)
    return dataclasses.replace(backend, url=f"{backend.proxy.url}/{rel}")


def test_numbers_in_the_url_do_not_make_a_503_permanent(numbered_backend, reference):
    """Regression: "404" / "403" anywhere in the message (the URL, a duration like
    "in 404.2µs") made error_mapping call a 503 "not found" / "access denied": no retry."""
    # 5 > obstore's 4 tries (default RetryPolicy): the 503 reaches the reader's classification
    numbered_backend.proxy.configure(fail_first=5, fail_status=503)
    got = read_async(numbered_backend.url, **numbered_backend.options)
    np.testing.assert_array_equal(got, reference[0])
    assert numbered_backend.proxy.faults["status"] == 5


# Messages as obstore / async-tiff word them (captured from the servers above), with request
# durations that happen to read 401-404.
_OBSERVED = {
    "503 in 404.2µs": (
        (
            "GenericError: Generic S3 error: Error performing GET http://127.0.0.1:41157/bkt/a.tif "
            "in "
            "404.2µs - Server returned non-2xx status code: 503 Service Unavailable: "
            "<Error><Code>SlowDown"
            "</Code></Error>"
        ),
        StoreReadError,
    ),
    "reset after 403.1ms": (
        (
            "GenericError: Generic HTTP error: Error performing GET http://127.0.0.1:4000/a.tif in "
            "403.1ms, after 3 retries - HTTP error: error sending request"
        ),
        StoreReadError,
    ),
    "500 whose body says not found": (
        (
            "GenericError: Generic HTTP error: Error performing GET http://127.0.0.1:4000/a.tif in "
            "2.1ms "
            "- Server returned non-2xx status code: 500 Internal Server Error: upstream not found"
        ),
        StoreReadError,
    ),
    "404": (
        (
            "FileNotFoundError: Object at location a/none.tif not found: Error performing GET "
            "http://127.0.0.1:42203/bkt/a/none.tif in 1.5ms - Server returned non-2xx status code: "
            "404 Not Found: <Error><Code>NoSuchKey</Code></Error>"
        ),
        FileNotFoundError,
    ),
    "401": (
        (
            "UnauthenticatedError: The operation lacked valid authentication credentials for path "
            "x.tif: "
            "Error performing GET http://127.0.0.1:34411/a/x.tif in 643.494µs - Server returned "
            "non-2xx "
            "status code: 401 Unauthorized"
        ),
        PermissionError,
    ),
    "403 signature": (
        (
            "PermissionDeniedError: The operation lacked the necessary privileges to complete for "
            "path "
            "a/x.tif: Error performing GET http://127.0.0.1:42203/bkt/a/x.tif in 857.952µs - "
            "Server "
            "returned non-2xx status code: 403 Forbidden: <Code>SignatureDoesNotMatch</Code>"
        ),
        PermissionError,
    ),
    "local missing": ("No such file or directory (os error 2)", FileNotFoundError),
}


@pytest.mark.parametrize("case", list(_OBSERVED))
def test_error_classification_of_observed_messages(case):
    from georeader.io import map_store_error

    message, expected = _OBSERVED[case]
    mapped = map_store_error(TypeError(message), "s3://bkt/a.tif", "reading window (...)")
    assert isinstance(mapped, expected), (case, type(mapped).__name__)
    assert "s3://bkt/a.tif" in str(mapped)
