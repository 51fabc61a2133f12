"""Reads from a real S3 server (SeaweedFS on 127.0.0.1, SigV4 checked), compared with GDAL.

The object is a multi-tile COG with an internal mask and two overviews; the
reference is `RasterioReader` on the local copy of the same bytes.
"""

from __future__ import annotations

import numpy as np
import pytest

import daskcog
from georeader import AccessDeniedError, GeoreaderError, ObjectNotFoundError
from tests.stores.helpers import (
    LEVELS,
    elapsed,
    read_async,
    read_dask,
    record_requests,
    s3_options,
)


@pytest.mark.parametrize("level", LEVELS)
def test_async_reader_matches_gdal(s3_server, s3_cog, reference, level):
    got = read_async(s3_cog, overview_level=level, **s3_options(s3_server))
    assert got.dtype == reference[level].dtype
    np.testing.assert_array_equal(got, reference[level])


@pytest.mark.parametrize("chunks, level", [(64, 0), ("auto", 0), ((1, 96, 128), 0), (64, 1)])
def test_daskcog_threads_matches_gdal(s3_server, s3_cog, reference, chunks, level):
    got = read_dask(s3_cog, chunks=chunks, overview_level=level, **s3_options(s3_server))
    np.testing.assert_array_equal(got, reference[level])


def test_missing_key_is_object_not_found(s3_server, s3_bucket):
    url = f"s3://{s3_bucket}/stores/no-such-object.tif"
    opts = s3_options(s3_server)
    exc, seconds = elapsed(lambda: read_async(url, **opts))
    assert isinstance(exc, ObjectNotFoundError) and isinstance(exc, FileNotFoundError), repr(exc)
    assert url in str(exc)
    assert seconds < 2, f"a 404 must not be retried ({seconds:.2f} s)"
    with pytest.raises(ObjectNotFoundError, match="no-such-object.tif") as info:
        daskcog.open(url, **opts)
    assert url in str(info.value)


def test_missing_bucket_is_object_not_found(s3_server):
    url = "s3://daskcog-no-such-bucket/stores/x.tif"
    exc, seconds = elapsed(lambda: read_async(url, **s3_options(s3_server)))
    assert isinstance(exc, ObjectNotFoundError), repr(exc)
    assert url in str(exc)
    assert seconds < 2


def test_wrong_secret_is_access_denied_fast(s3_server, s3_cog, range_proxy_s3):
    wrong = "wrong-secret-0000000000000000000000"
    opts = s3_options(s3_server, endpoint=range_proxy_s3.url, secret_access_key=wrong)
    exc, seconds = elapsed(lambda: read_async(s3_cog, **opts))
    assert isinstance(exc, AccessDeniedError) and isinstance(exc, PermissionError), repr(exc)
    assert s3_cog in str(exc)
    assert wrong not in str(exc)
    assert seconds < 2, f"access denied must not be retried ({seconds:.2f} s)"
    assert range_proxy_s3.requests_total == 1, "403 was retried"
    record_requests(
        "s3 wrong secret (AsyncGeoTIFFReader)", range_proxy_s3, seconds=round(seconds, 3)
    )

    range_proxy_s3.reset_counters()
    exc, seconds = elapsed(lambda: daskcog.open(s3_cog, chunks=64, **opts))
    assert isinstance(exc, AccessDeniedError), repr(exc)
    assert seconds < 2
    assert range_proxy_s3.requests_total == 1
    assert wrong not in str(exc)


def test_unknown_access_key_is_access_denied(s3_server, s3_cog):
    opts = s3_options(s3_server, access_key_id="nobody-knows-this-key")
    exc, seconds = elapsed(lambda: read_async(s3_cog, **opts))
    assert isinstance(exc, AccessDeniedError), repr(exc)
    assert seconds < 2


def test_header_fetched_once_per_process(
    s3_server, s3_cog, reference, range_proxy_s3, cog_header_bytes
):
    """Two daskcog.open + compute of one COG on the threaded scheduler: one header request."""
    opts = s3_options(s3_server, endpoint=range_proxy_s3.url)
    path = "/" + s3_cog.removeprefix("s3://")
    per_step = []
    for attempt in (1, 2):
        range_proxy_s3.reset_counters()
        arr = daskcog.open(s3_cog, chunks=64, **opts)
        opened = range_proxy_s3.header_requests(cog_header_bytes, path)
        range_proxy_s3.reset_counters()
        got = arr.data.compute(scheduler="threads")
        np.testing.assert_array_equal(got, reference[0])
        per_step.append({
            "open": attempt, "header_requests_at_open": opened,
            "header_requests_in_compute": range_proxy_s3.header_requests(cog_header_bytes, path),
            "requests_in_compute": len(range_proxy_s3.gets(path)),
            "chunks": arr.data.npartitions,
        })
        record_requests(f"s3 header: open #{attempt} + compute (threads)", None, **per_step[-1])
    print("header requests:", per_step)
    assert [s["header_requests_at_open"] for s in per_step] == [1, 0]
    assert [s["header_requests_in_compute"] for s in per_step] == [0, 0]
    # the second compute may find tiles in the per-process tile cache (georeader.range_cache)
    assert per_step[0]["requests_in_compute"] > 0
    assert per_step[1]["requests_in_compute"] <= per_step[0]["requests_in_compute"]
    assert daskcog.cache_info().opens == 1


def test_error_is_a_georeader_error_not_a_raw_obstore_one(s3_server, s3_bucket):
    url = f"s3://{s3_bucket}/stores/missing.tif"
    with pytest.raises(GeoreaderError):
        read_async(url, **s3_options(s3_server))
