"""Outputs written to object stores (SeaweedFS, Azurite): read back equal; a failed
upload leaves no object (and an object already there unchanged) and no local file."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import obstore
import pytest

import daskcog
from daskcog.runtime import credentials as creds
from daskcog.writing.write import write_raster
from georeader import RasterioReader
from georeader.io import UPLOAD_PART, UploadError
from tests.servers import NO_RETRY
from tests.stores.helpers import record_requests, s3_options


@pytest.fixture(scope="module")
def big_local(tmp_path_factory):
    """A COG over two upload parts: 2 bands of 2048 x 1536 uint16 noise, uncompressed (12 MiB)."""
    rng = np.random.default_rng(10)
    data = rng.integers(0, 65535, size=(2, 2048, 1536), dtype=np.uint16)
    path = tmp_path_factory.mktemp("big") / "big.tif"
    from affine import Affine

    from georeader.geo import GeoTensor

    tensor = GeoTensor(data, transform=Affine(10, 0, 500000, 0, -10, 4600000), crs="EPSG:32633")
    write_raster(tensor, path, compress="none")
    assert path.stat().st_size > UPLOAD_PART
    return path


def _leftovers() -> list[str]:
    return [n for n in os.listdir(tempfile.gettempdir()) if n.startswith(".daskcog-upload-")]


def _read_back(url: str, **options) -> np.ndarray:
    return daskcog.open(url, **options).data.compute(scheduler="threads")


def test_to_cog_and_to_raster_on_s3(s3_server, s3_bucket, big_local):
    source = daskcog.open(big_local, chunks=512)
    expected = RasterioReader(big_local).load().values
    opts = s3_options(s3_server)
    url = f"s3://{s3_bucket}/out/mosaic.tif"
    before = _leftovers()
    assert source.to_cog(url, store_options=opts, compress="none") == url
    np.testing.assert_array_equal(_read_back(url, **opts), expected)
    assert _leftovers() == before
    # to_raster, with named credentials
    public = {k: v for k, v in opts.items() if not creds.is_secret(k)}
    creds.register("write-test", access_key_id=s3_server.access_key,
                   secret_access_key=s3_server.secret_key)
    try:
        plain = f"s3://{s3_bucket}/out/plain.tif"
        source.to_raster(plain, credentials="write-test", store_options=public)
        np.testing.assert_array_equal(_read_back(plain, **opts), expected)
    finally:
        creds.unregister("write-test")


def test_to_cog_on_azurite(azurite_server, azurite_container, big_local):
    source = daskcog.open(big_local, chunks=512)
    url = f"az://{azurite_container}/out/mosaic.tif"
    source.to_cog(url, store_options=azurite_server.options())
    np.testing.assert_array_equal(
        _read_back(url, **azurite_server.options()), RasterioReader(big_local).load().values
    )


def test_a_failed_upload_leaves_no_object(s3_server, s3_bucket, big_local, fault_proxy_s3):
    source = daskcog.open(big_local, chunks=512)
    opts = s3_options(s3_server, endpoint=fault_proxy_s3.url, retry_config=NO_RETRY)
    url = f"s3://{s3_bucket}/out/failed.tif"
    key = "out/failed.tif"
    fault_proxy_s3.configure(methods=["PUT"], fail_rate=1.0, fail_status=500)
    before = _leftovers()
    with pytest.raises(UploadError, match="nothing was written") as info:
        source.to_cog(url, store_options=opts, compress="none")
    assert url in str(info.value) and s3_server.secret_key not in str(info.value)
    record_requests("s3 write: every part upload fails", fault_proxy_s3)
    fault_proxy_s3.clear_faults()
    store = s3_server.store(s3_bucket)
    with pytest.raises(FileNotFoundError):
        obstore.head(store, key)
    assert _leftovers() == before
    # an object already there is left as it was
    obstore.put(store, key, b"previous")
    fault_proxy_s3.configure(methods=["PUT"], fail_rate=1.0, fail_status=500)
    with pytest.raises(UploadError):
        source.to_cog(url, store_options=opts, compress="none")
    fault_proxy_s3.clear_faults()
    assert bytes(obstore.get(store, key).bytes()) == b"previous"


def test_bad_output_urls():
    from georeader.io import staged_upload

    with pytest.raises(UploadError, match="signed"), staged_upload("https://h/b/o.tif?sig=secret"):
        pass
    with pytest.raises(UploadError, match="cannot be written"), staged_upload("https://h/b/o.tif"):
        pass


def test_cli_mosaic_to_s3(s3_server, s3_bucket, tiff_cache):
    """`daskcog mosaic ... -o s3://...`: credentials from the environment, as on a cluster."""
    import subprocess
    import sys

    from tests.cogfactory import TiffSpec, cached_tiff
    from tests.conftest import PROJECT_ROOT

    left = cached_tiff(TiffSpec(dtype="uint16", width=300, height=200, nodata=0), tiff_cache)
    url = f"s3://{s3_bucket}/out/cli-mosaic.tif"
    result = subprocess.run(
        [sys.executable, "-m", "daskcog.cli", "mosaic", str(left), "-o", url, "--blocksize", "128"],
        capture_output=True, text=True, timeout=150, cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **s3_server.env()},
    )
    assert result.returncode == 0, result.stderr
    assert f"wrote {url}" in result.stdout
    got = _read_back(url, **s3_options(s3_server))
    np.testing.assert_array_equal(got, RasterioReader(left).load().values)
