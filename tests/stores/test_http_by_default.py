"""What a URL names is what is read (issue 19, item 1).

* `http://` needs no `client_options={"allow_http": True}`: the user who wrote http://
  asked for HTTP (before: 10-13 s of retries, then "HTTP error: builder error").
  An http:// endpoint of an S3-compatible server is the same request.
* An https URL of a bucket (`https://bucket.s3.region.amazonaws.com/key`, path style
  `https://s3.amazonaws.com/bucket/key`) is a public HTTPS object, read anonymously as
  GDAL's /vsicurl/ reads it (before: obstore's S3 store, asking for credentials); with
  S3 options (region, skip_signature, keys, requester_pays) it is the bucket's S3 store.
"""

from __future__ import annotations

import numpy as np
import pytest
from obstore.store import AzureStore, HTTPStore, S3Store

from georeader import parse_location
from georeader.io import allow_http_when_named, build_store, s3_https_url
from tests.stores.helpers import read_async, read_dask, s3_options


def test_plain_http_url_reads_without_options(http_server, http_cog_rel, reference):
    url = http_server.url_for(http_cog_rel)
    assert url.startswith("http://")
    np.testing.assert_array_equal(read_async(url), reference[0])
    np.testing.assert_array_equal(read_dask(url), reference[0])


def test_explicit_allow_http_is_kept():
    location = parse_location("http://127.0.0.1:1/a.tif")
    config = {"client_options": {"allow_http": False}}
    assert allow_http_when_named(location, config) is config
    https = parse_location("https://example.org/a.tif")
    assert allow_http_when_named(https, {}) == {}


def test_http_endpoint_of_s3_server_needs_no_allow_http(s3_server, s3_cog, reference):
    options = s3_options(s3_server)
    options.pop("client_options", None)
    assert str(options["endpoint"]).startswith("http://")
    np.testing.assert_array_equal(read_dask(s3_cog, **options), reference[0])


@pytest.mark.parametrize(
    "url",
    [
        "https://sentinel-cogs.s3.us-west-2.amazonaws.com/tiles/B04.tif",
        "https://s3.amazonaws.com/sentinel-cogs/tiles/B04.tif",
        "https://account.blob.core.windows.net/container/B04.tif",
    ],
)
def test_public_bucket_https_url_is_an_anonymous_https_read(url):
    assert isinstance(build_store(parse_location(url)), HTTPStore)


def test_bucket_https_url_with_store_options_is_the_buckets_store():
    url = "https://sentinel-cogs.s3.us-west-2.amazonaws.com/tiles/B04.tif"
    assert isinstance(build_store(parse_location(url), region="us-west-2"), S3Store)
    assert isinstance(build_store(parse_location(url), requester_pays=True), S3Store)
    azure = "https://account.blob.core.windows.net/container/B04.tif"
    assert isinstance(build_store(parse_location(azure), skip_signature=True), AzureStore)


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://b.s3.us-west-2.amazonaws.com/dir", ("s3://b/dir", "us-west-2")),
        ("https://b.s3.amazonaws.com/dir", ("s3://b/dir", None)),
        ("https://s3.eu-central-1.amazonaws.com/b/dir", ("s3://b/dir", "eu-central-1")),
        ("https://s3-us-west-2.amazonaws.com/b", ("s3://b", "us-west-2")),
        ("https://example.org/b/dir", None),
        ("http://b.s3.amazonaws.com/dir", None),
    ],
)
def test_s3_https_urls_are_recognised(url, expected):
    assert s3_https_url(url) == expected
