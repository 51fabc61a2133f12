"""Reads over plain HTTP from the project's range server (127.0.0.1), compared with GDAL."""

from __future__ import annotations

import numpy as np
import pytest

import daskcog
from georeader import NATIVE, RASTERIO, AccessDeniedError, AsyncGeoTIFFReader, ObjectNotFoundError
from tests.stores.helpers import (
    HTTP_OPTIONS,
    LEVELS,
    elapsed,
    parse_range,
    read_async,
    read_dask,
    record_requests,
    run,
    settle,
)


@pytest.mark.parametrize("level", LEVELS)
def test_async_reader_matches_gdal(http_server, http_cog_rel, reference, level):
    url = http_server.url_for(http_cog_rel)
    got = read_async(url, overview_level=level, **HTTP_OPTIONS)
    np.testing.assert_array_equal(got, reference[level])
    gets = http_server.requests("GET", http_cog_rel)
    assert gets and all(r[2] and r[2].startswith("bytes=") for r in gets), gets


@pytest.mark.parametrize("chunks, level", [(64, 0), ("auto", 0), (64, 2)])
def test_daskcog_threads_matches_gdal(http_server, http_cog_rel, reference, chunks, level):
    url = http_server.url_for(http_cog_rel)
    got = read_dask(url, chunks=chunks, overview_level=level, **HTTP_OPTIONS)
    np.testing.assert_array_equal(got, reference[level])


def test_404_is_object_not_found(http_server, http_cog_rel):
    url = http_server.url_for("stores/no-such-file.tif")
    exc, seconds = elapsed(lambda: read_async(url, **HTTP_OPTIONS))
    assert isinstance(exc, ObjectNotFoundError) and isinstance(exc, FileNotFoundError), repr(exc)
    assert url in str(exc)
    assert seconds < 2
    assert len(http_server.requests(path="stores/no-such-file.tif")) == 1, "404 was retried"
    with pytest.raises(ObjectNotFoundError, match="no-such-file.tif"):
        daskcog.open(url, **HTTP_OPTIONS)


def test_403_forbidden_is_access_denied_fast(http_server, http_cog_rel):
    http_server.forbid(http_cog_rel)
    url = http_server.url_for(http_cog_rel)
    exc, seconds = elapsed(lambda: read_async(url, **HTTP_OPTIONS))
    assert isinstance(exc, AccessDeniedError) and isinstance(exc, PermissionError), repr(exc)
    assert url in str(exc)
    assert seconds < 2
    assert len(http_server.requests(path=http_cog_rel)) == 1, "403 was retried"
    exc, seconds = elapsed(lambda: daskcog.open(url, chunks=64, **HTTP_OPTIONS))
    assert isinstance(exc, AccessDeniedError), repr(exc)
    assert seconds < 2


def test_403_after_open_fails_the_compute(http_server, http_cog_rel):
    """Access revoked between graph building and compute: the chunk error is typed and names the
    URL."""
    url = http_server.url_for(http_cog_rel)
    arr = daskcog.open(url, chunks=64, **HTTP_OPTIONS)
    http_server.forbid(http_cog_rel)
    with pytest.raises(AccessDeniedError) as info:
        arr.data.compute(scheduler="threads")
    settle(lambda: len(http_server.request_log))
    assert url in str(info.value)
    assert "window" in str(info.value)


def test_striped_file_takes_the_rasterio_route_with_ranged_reads(
    http_server, http_cog_rel, striped_path, striped_reference
):
    rel = "stores/striped.tif"
    url = http_server.url_for(rel)

    async def go():
        reader = await AsyncGeoTIFFReader.open(url, **HTTP_OPTIONS)
        return reader, (await reader.load()).values

    reader, got = run(go())
    assert reader.layout.route == RASTERIO
    np.testing.assert_array_equal(got, striped_reference)
    np.testing.assert_array_equal(read_dask(url, chunks=64, **HTTP_OPTIONS), striped_reference)
    gets = http_server.requests("GET", rel)
    size = striped_path.stat().st_size
    assert gets, "no GET reached the server"
    # obstore ranged reads, never a whole-file download
    for _, _, header in gets:
        r = parse_range(header)
        assert r is not None, f"GET without a Range header: {gets}"
    record_requests("http striped file, rasterio route (async + dask)", None,
                    gets=len(gets), heads=len(http_server.requests("HEAD", rel)), file_bytes=size)


def test_cog_is_native_over_http(http_server, http_cog_rel):
    async def go():
        return await AsyncGeoTIFFReader.open(http_server.url_for(http_cog_rel), **HTTP_OPTIONS)

    assert run(go()).layout.route == NATIVE


def test_header_fetched_once_per_process(http_server, http_cog_rel, reference, range_proxy_http,
                                         cog_header_bytes):
    url = f"{range_proxy_http.url}/{http_cog_rel}"
    path = "/" + http_cog_rel
    headers, computes = [], []
    for attempt in (1, 2):
        range_proxy_http.reset_counters()
        arr = daskcog.open(url, chunks=64, **HTTP_OPTIONS)
        headers.append(range_proxy_http.header_requests(cog_header_bytes, path))
        range_proxy_http.reset_counters()
        np.testing.assert_array_equal(arr.data.compute(scheduler="threads"), reference[0])
        headers.append(range_proxy_http.header_requests(cog_header_bytes, path))
        computes.append(len(range_proxy_http.gets(path)))
        record_requests(f"http header: open #{attempt} + compute (threads)", None,
                        header_requests_open_then_compute=headers[-2:],
                        requests_in_compute=computes[-1], chunks=arr.data.npartitions)
    assert headers == [1, 0, 0, 0]
    # the second compute may find tiles in the per-process tile cache (georeader.range_cache)
    assert computes[0] > 0 and computes[1] <= computes[0]
    # the range server saw the same: one request starting inside the header
    starts = [parse_range(h) for _, _, h in http_server.requests("GET", http_cog_rel)]
    assert sum(1 for s in starts if s is None or s[0] < cog_header_bytes) == 1
