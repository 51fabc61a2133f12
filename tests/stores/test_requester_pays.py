"""Requester-pays buckets: the fault proxy in front of SeaweedFS answers 403 to any
request without `x-amz-request-payer: requester` (what S3 does for such buckets),
and forwards the others, still signed (obstore signs the header with SigV4)."""

from __future__ import annotations

import numpy as np
import pytest

import daskcog
from georeader import AccessDeniedError, AsyncGeoTIFFReader
from georeader.errors import UnknownOptionError
from tests.servers import NO_RETRY
from tests.stores.helpers import record_requests, run, s3_options


def test_requester_pays(s3_server, s3_cog, fault_proxy_s3, reference):
    fault_proxy_s3.configure(require_header=("x-amz-request-payer", "requester"))
    opts = s3_options(s3_server, endpoint=fault_proxy_s3.url, retry_config=NO_RETRY)
    with pytest.raises(AccessDeniedError, match=s3_cog):
        daskcog.open(s3_cog, **opts)
    refused = fault_proxy_s3.faults["missing-header"]
    assert refused >= 1

    arr = daskcog.open(s3_cog, chunks=64, requester_pays=True, **opts)
    np.testing.assert_array_equal(arr.data.compute(scheduler="threads"), reference[0])
    # the store option, as a STAC item's storage:requester_pays sets it, in every entry point
    mosaic = daskcog.mosaic([s3_cog], requester_pays=True, **opts)
    np.testing.assert_array_equal(mosaic.data.compute(scheduler="threads"), reference[0])

    async def direct() -> np.ndarray:
        reader = await AsyncGeoTIFFReader.open(s3_cog, requester_pays=True, **opts)
        return (await reader.load()).values

    np.testing.assert_array_equal(run(direct()), reference[0])
    assert fault_proxy_s3.faults["missing-header"] == refused
    record_requests("s3 requester pays (403 without the header)", fault_proxy_s3)


def test_requester_pays_is_an_s3_option(tmp_path):
    # issue 19: refused at call time as an option this URL's store does not take (a TypeError)
    with pytest.raises(UnknownOptionError, match=r"'requester_pays' \(an S3 option"):
        daskcog.open("https://example.invalid/a.tif", requester_pays=True)
