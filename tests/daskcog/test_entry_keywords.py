"""Unknown keywords are a TypeError at call time in every entry point (issue 19, issue 17 item 12).

Before: `daskcog.open(path, chunck=...)` built a graph and failed at compute time with
"local files take no store options"; `regoin=` on an S3 URL reached obstore's
`UnknownConfigurationKeyError` in a worker. Now each entry point checks its store options
against the URL's store (`georeader.store.check_store_options`) before any I/O or graph.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import daskcog
from georeader.errors import UnknownOptionError


def test_open_misspelt_keyword_suggests_its_own_name(gen_paths: dict[str, Path]) -> None:
    with pytest.raises(TypeError, match=r"'chunck' \(did you mean 'chunks'\?\)"):
        daskcog.open(gen_paths["multi-tile"], chunck=64)


def test_open_s3_misspelt_region_before_any_request() -> None:
    # no server: an error about the bucket would mean the check came too late
    with pytest.raises(UnknownOptionError, match=r"'regoin' \(did you mean 'region'\?\)"):
        daskcog.open("s3://no-such-bucket/a.tif", regoin="us-west-2")


def test_open_http_url_with_s3_keys() -> None:
    with pytest.raises(TypeError, match=r"'region'.*https://example\.invalid/a\.tif"):
        daskcog.open("https://example.invalid/a.tif", region="us-west-2")


def test_open_odc_stac_keyword_is_refused() -> None:
    with pytest.raises(TypeError, match="'fail_on_error'"):
        daskcog.open("s3://no-such-bucket/a.tif", fail_on_error=False)


def test_mosaic_misspelt_keyword(gen_paths: dict[str, Path]) -> None:
    with pytest.raises(TypeError, match=r"'methd' \(did you mean 'method'\?\)"):
        daskcog.mosaic([gen_paths["multi-tile"]], methd="max")


def test_mosaic_s3_keys_checked_once_per_store_kind() -> None:
    urls = [f"s3://no-such-bucket/{i}.tif" for i in range(1000)]
    with pytest.raises(TypeError, match="'regoin'"):
        daskcog.mosaic(urls, regoin="x")


def test_stack_misspelt_keyword(gen_paths: dict[str, Path]) -> None:
    with pytest.raises(TypeError, match=r"'resoltion' \(did you mean 'resolution'\?\)"):
        daskcog.stack([gen_paths["multi-tile"]], resoltion=10)


def test_xarray_backend_misspelt_keyword(gen_paths: dict[str, Path]) -> None:
    xr = pytest.importorskip("xarray")
    with pytest.raises(TypeError, match=r"'overview_levl' \(did you mean 'overview_level'\?\)"):
        xr.open_dataset(gen_paths["multi-tile"], engine="daskcog", overview_levl=1)
