"""Inputs refused before they could give silently wrong reads: unsplit query strings, fill
values."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from rasterio.windows import Window

from georeader import AsyncGeoTIFFReader, InvalidURLError, WindowError, parse_location
from georeader.geo.nodata import check_fill
from georeader.io.stores import split_signed_url
from tests.cogfactory import TiffSpec, cached_tiff


def test_query_strings_are_split_off_or_refused_without_echoing_them() -> None:
    url = "https://example.com/a/b.tif?X-Amz-Signature=SEKRIT&X-Amz-Credential=AKIA"
    with pytest.raises(InvalidURLError) as info:
        parse_location(url)  # a query not split off first: refused, never echoed
    assert "SEKRIT" not in str(info.value) and "https://example.com/a/b.tif" in str(info.value)
    plain, options = split_signed_url(url, {"client_options": {}})
    assert plain == "https://example.com/a/b.tif" and "SEKRIT" in options["url_query"]
    assert split_signed_url("/data/a?b.tif", {}) == ("/data/a?b.tif", {})  # a local name
    assert split_signed_url("s3://bucket/b.tif?versionId=2", {})[1] == {}  # refused later


@pytest.mark.parametrize(
    ("fill", "dtype", "ok"),
    [(0, "uint8", True), (255, "uint8", True), (-1, "uint8", False), (0.5, "uint8", False),
     (float("nan"), "int16", False), (float("nan"), "float32", True), (-9999, "int16", True),
     (70000, "uint16", False)],
)
def test_check_fill(fill: float, dtype: str, ok: bool) -> None:
    if ok:
        assert check_fill(fill, np.dtype(dtype)) == fill or np.isnan(fill)
    else:
        with pytest.raises(WindowError):
            check_fill(fill, np.dtype(dtype), "file:///x.tif")


def test_a_fill_the_dtype_cannot_hold_is_a_typed_error(tiff_cache) -> None:
    path = cached_tiff(TiffSpec(dtype="uint8", width=64, height=48, count=1), tiff_cache)

    async def read() -> None:
        reader = await AsyncGeoTIFFReader.open(path)
        await reader.read_window(Window(-4, -4, 16, 16), fill_value=-1)

    with pytest.raises(WindowError, match="does not fit uint8"):
        asyncio.run(read())
