"""Slices follow numpy / dask (empty and reversed slices are empty axes); bad windows name the
file."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.windows import Window

import daskcog
from georeader import AsyncGeoTIFFReader, RasterioReader, WindowError
from tests.georeader.helpers import run
from tests.georeader.hostile.build import write_base


@pytest.fixture(scope="module")
def cog(tmp_path_factory: pytest.TempPathFactory):
    return write_base(tmp_path_factory.mktemp("slices") / "cog.tif", count=2, compress="deflate")


@pytest.mark.parametrize(
    "key",
    [
        (slice(None), slice(0, 10), slice(10, 0)),
        (slice(None), slice(5, 5), slice(None)),
        (slice(None), slice(-3, None), slice(-130, 4)),
        (0, slice(100, 20), slice(0, 7)),
        (Ellipsis, slice(3, 1)),
        (slice(None), slice(200, 300), slice(None)),
    ],
)
def test_geoarray_slices_follow_numpy(cog, key) -> None:
    arr = daskcog.open(cog, chunks=64)
    # GeoArray keeps the band axis (an integer band index selects a one-band array)
    ref_key = tuple([k] if isinstance(k, int) else k for k in key)
    with RasterioReader(cog) as ref:
        expected = ref.load().values[ref_key]
    got = arr[key]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.compute().values.reshape(expected.shape), expected)


@pytest.mark.parametrize(
    "window", [Window(0, 0, 0, 5), Window(0, 0, 5, 0), Window(0.5, 0, 5, 5), Window(0, 0, 5.5, 5)]
)
def test_bad_windows_name_the_file(cog, window) -> None:
    reader = run(AsyncGeoTIFFReader.open(cog))
    url = reader.url
    with pytest.raises(WindowError, match="^" + url):
        run(reader.read_window(window))
    with pytest.raises(WindowError, match="^" + url):
        reader.read_window_sync(window)
    with RasterioReader(cog) as ref, pytest.raises(WindowError, match="^" + url):
        ref.read_window(window)
    with pytest.raises(WindowError, match="^" + url):
        daskcog.open(cog, chunks=64).isel_window(window)


def test_reversed_geoslice_is_empty(cog) -> None:
    reader = run(AsyncGeoTIFFReader.open(cog))
    got = run(reader.read_geoslice(slice(10, 0), slice(None)))
    assert got.values.shape == (2, 0, reader.width)
    with pytest.raises(WindowError, match="^" + reader.url):
        run(reader.read_geoslice(slice(0, 10, 2), slice(None)))
