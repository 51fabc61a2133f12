"""Signed URLs against the real SeaweedFS server, which checks signatures and expiry.

Presigned URLs are made by obstore (`obstore.sign`) with the server's keys and
a short expiry. Covered: reads before expiry; an expired URL without a signer
is a typed error naming the plain URL; a signer re-signs before the known
expiry and again (once) after a refusal; a signer whose URLs keep failing is an
`AccessDeniedError`; a re-signed URL is the same object (one header, one graph
name); the signer reaches distributed workers outside the graph.
"""

from __future__ import annotations

import time
import traceback
from datetime import timedelta
from urllib.parse import parse_qsl

import numpy as np
import obstore
import pytest

import daskcog
from georeader import AccessDeniedError, InvalidURLError, configured
from georeader.io import expiry, redact, split_query
from tests.stores.helpers import HTTP_OPTIONS, read_async

LIFE = 2
"""Seconds a presigned URL lives in these tests."""


def _error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


class Signer:
    """Presigns the object's S3 key anew on each call (what a catalogue's signing API does).

    It pickles (obstore's S3Store does), so distributed sends it to the workers."""

    def __init__(self, s3_server, bucket: str, key: str, life: float = LIFE) -> None:
        self.store = s3_server.store(bucket)
        self.key = key
        self.life = life
        self.signed: list[str] = []  # list.append is atomic: signers run in many threads

    @property
    def calls(self) -> int:
        return len(self.signed)

    def __call__(self, url: str) -> str:
        self.signed.append(url)
        return obstore.sign(self.store, "GET", self.key, timedelta(seconds=self.life))


@pytest.fixture
def presign(s3_server, s3_bucket, s3_cog):
    """A Signer for the test COG, plus the key it signs."""
    key = s3_cog.split("/", 3)[3]
    signer = Signer(s3_server, s3_bucket, key)
    return signer


def test_query_helpers():
    plain, query = split_query("https://h/b/k.tif?X-Amz-Signature=abcdef12&X-Amz-Expires=5")
    assert plain == "https://h/b/k.tif" and query.startswith("X-Amz-Signature")
    with pytest.raises(InvalidURLError, match="fragment"):
        split_query("https://h/b/k.tif?sig=1#frag")
    text = redact(
        "GET https://h/b/k.tif?sig=abc%2Fdef&sv=1 failed; sig abc/def", "sig=abc%2Fdef&sv=1"
    )
    assert "abc" not in text and "https://h/b/k.tif?<query removed>" in text
    assert expiry("X-Amz-Date=20260101T000000Z&X-Amz-Expires=60") == 1767225660
    assert expiry("sv=2023-11-03&se=2026-01-01T00%3A01%3A00Z&sig=x") == 1767225660
    assert expiry("token=opaque") is None
    with pytest.raises(InvalidURLError, match="only http"):
        daskcog.open("s3://bucket/key.tif?versionId=3")


def test_presigned_url_reads_and_expires(presign, reference):
    url = presign(None)
    np.testing.assert_array_equal(read_async(url, **HTTP_OPTIONS), reference[0])
    arr = daskcog.open(url, chunks=64, **HTTP_OPTIONS)
    assert arr.source.url == url.partition("?")[0]
    np.testing.assert_array_equal(arr.data.compute(scheduler="threads"), reference[0])
    time.sleep(max(0.0, expiry(split_query(url)[1]) - time.time()) + 1.1)
    daskcog.cache_clear()
    with pytest.raises(AccessDeniedError, match="expired") as info:
        arr.data.compute(scheduler="threads")
    text = _error_text(info.value)
    assert url.partition("?")[0] in text
    for value in dict(parse_qsl(split_query(url)[1])).values():
        assert len(value) < 8 or value not in text


def test_signer_renews_before_expiry(presign, reference):
    """A compute that outlives its token: the signer is asked again before the token ends."""
    url = presign(None)
    arr = daskcog.open(url, chunks=64, sign=presign, **HTTP_OPTIONS)
    np.testing.assert_array_equal(arr.data.compute(scheduler="threads"), reference[0])
    before = presign.calls
    time.sleep(LIFE + 0.5)
    np.testing.assert_array_equal(arr.data.compute(scheduler="threads"), reference[0])
    assert before + 1 <= presign.calls <= before + 2  # renewed for the compute, not per request
    assert daskcog.cache_info().opens == 1  # the header was not fetched again


@pytest.fixture
def margin_disabled():
    with configured(signed_url_margin=-3600.0):
        yield


def test_signer_renews_once_after_a_refusal(presign, reference, margin_disabled):
    """Expiry unknown (margin disabled): the refused read is re-signed once and retried."""
    url = presign(None)
    arr = daskcog.open(url, chunks=(2, 217, 300), sign=presign, **HTTP_OPTIONS)
    time.sleep(LIFE + 1.1)  # the URL in hand is refused now (403, "Request has expired")
    calls = presign.calls
    np.testing.assert_array_equal(arr.data.compute(scheduler="threads"), reference[0])
    assert presign.calls == calls + 1


def test_signer_that_keeps_failing_is_access_denied(s3_server, s3_bucket, s3_cog, presign):
    key = s3_cog.split("/", 3)[3]
    wrong = s3_server.store(s3_bucket, secret_access_key="Wr0ng-Secret-For-The-Signed-Test")
    calls = []

    def bad_signer(url: str) -> str:
        calls.append(url)
        return obstore.sign(wrong, "GET", key, timedelta(seconds=60))

    url = presign(None)
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    with pytest.raises(AccessDeniedError, match="even after signing the URL again") as info:
        read_async(tampered, sign=bad_signer, **HTTP_OPTIONS)
    assert len(calls) == 1
    text = _error_text(info.value)
    assert url.partition("?")[0] in text
    for value in dict(parse_qsl(split_query(tampered)[1])).values():
        assert len(value) < 8 or value not in text

    def broken(url: str) -> str:
        raise RuntimeError("token service down")

    with pytest.raises(AccessDeniedError, match="signer broken failed: RuntimeError"):
        read_async(url.partition("?")[0], sign=broken, **HTTP_OPTIONS)


def test_resigned_url_is_the_same_object(presign, reference):
    first = daskcog.open(presign(None), chunks=64, **HTTP_OPTIONS)
    time.sleep(1.1)  # a new X-Amz-Date: another token
    second_url = presign(None)
    second = daskcog.open(second_url, chunks=64, **HTTP_OPTIONS)
    assert first.data.name == second.data.name
    assert first.source == second.source
    assert daskcog.cache_info().opens == 1
    np.testing.assert_array_equal(second.data.compute(scheduler="threads"), reference[0])


def test_signer_reaches_distributed_workers(presign, reference):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0",
    ) as cluster, distributed.Client(cluster) as client:
        arr = daskcog.open(presign(None), chunks=64, sign=presign, **HTTP_OPTIONS)
        np.testing.assert_array_equal(arr.data.compute(), reference[0])
        time.sleep(LIFE + 0.5)  # the workers' URL has expired: they sign again themselves
        np.testing.assert_array_equal(arr.data.compute(), reference[0])
        stats = client.run(lambda: daskcog.cache_info().opens)
        assert list(stats.values()) == [1]


def test_striped_file_behind_a_presigned_url(s3_server, s3_bucket, striped_path, striped_reference):
    """The rasterio route (GDAL through obstore's ranged reader) reads signed URLs too."""
    key = "stores/signed-striped.tif"
    s3_server.upload(s3_bucket, key, striped_path)
    url = obstore.sign(s3_server.store(s3_bucket), "GET", key, timedelta(seconds=60))
    np.testing.assert_array_equal(read_async(url, **HTTP_OPTIONS), striped_reference)
    arr = daskcog.open(url, chunks=64, **HTTP_OPTIONS)
    np.testing.assert_array_equal(arr.data.compute(scheduler="threads"), striped_reference)


def test_mosaic_with_a_signer(presign, s3_server, s3_bucket, s3_cog, reference):
    """Plain URLs and one signer: every scene shares one credential set; the workers sign."""
    plain = presign(None).partition("?")[0]
    mosaic = daskcog.mosaic([plain, plain], chunks=64, sign=presign, **HTTP_OPTIONS)
    from daskcog.mosaics.scenes import fetch_scenes

    scenes = fetch_scenes([plain, presign(None)], sign=presign, **HTTP_OPTIONS)
    assert scenes[0].credentials.startswith("auto-")  # the signer alone: one set for all URLs
    assert scenes[1].credentials.startswith("signed-")  # a URL with its own token
    np.testing.assert_array_equal(mosaic.data.compute(scheduler="threads"), reference[0])
