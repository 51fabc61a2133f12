"""The reader contract (georeader.contract): what daskcog and users may rely on.

`async with` opens and closes; `aclose()` lets the header go; `footprint`;
`read_bounds` refuses to warp or resample (and says where to go); `read_geoslice`
takes one (rows, cols) value; `conforms` to the Protocols is true only for
conforming readers and never raises, opened or not.
"""

from __future__ import annotations

import typing
from typing import Any

import numpy as np
import pytest
from rasterio.windows import Window

from georeader import (
    AsyncGeoData,
    AsyncGeoTIFFReader,
    GeoData,
    RasterioReader,
    ReaderNotOpenedError,
    WindowError,
    conforms,
)
from georeader.contract import GeoMetadata
from tests.cogfactory import TiffSpec, cached_tiff
from tests.georeader.helpers import run, same_pixels

SPEC = TiffSpec(dtype="uint16", width=300, height=217, count=2, overviews=(2,))


@pytest.fixture(scope="module")
def cog(tmp_path_factory: pytest.TempPathFactory):
    return cached_tiff(SPEC, tmp_path_factory.mktemp("contract"))


def test_async_with_opens_and_aclose_releases(cog) -> None:
    reader = AsyncGeoTIFFReader(cog)

    async def main() -> tuple[int, ...]:
        async with reader as opened:
            assert opened is reader
            return reader.shape

    assert run(main()) == (2, 217, 300)
    with pytest.raises(ReaderNotOpenedError):
        _ = reader.width

    async def reopen() -> None:
        await reader.__aenter__()
        assert reader.height == 217
        await reader.aclose()

    run(reopen())
    with pytest.raises(ReaderNotOpenedError):
        _ = reader.transform


def test_open_is_a_classmethod_and_nothing_else(cog) -> None:
    reader = run(AsyncGeoTIFFReader.open(cog, overview_level=1))
    assert reader.overview_level == 1
    assert not hasattr(AsyncGeoTIFFReader, "open_")


def test_footprint_is_the_closed_outline(cog) -> None:
    reader = run(AsyncGeoTIFFReader.open(cog))
    left, bottom, right, top = reader.bounds
    assert reader.footprint == (
        (left, top),
        (right, top),
        (right, bottom),
        (left, bottom),
        (left, top),
    )
    with RasterioReader(cog) as ref:
        assert ref.footprint == reader.footprint


def test_read_bounds_refuses_warp_and_resampling(cog) -> None:
    reader = run(AsyncGeoTIFFReader.open(cog))
    same = run(
        reader.read_bounds(reader.bounds, target_crs=reader.crs, target_resolution=reader.res)
    )
    assert same.shape == reader.shape
    with pytest.raises(NotImplementedError, match="daskcog.mosaic"):
        run(reader.read_bounds(reader.bounds, target_crs="EPSG:4326"))
    with pytest.raises(NotImplementedError, match="overview"):
        run(reader.read_bounds(reader.bounds, target_resolution=20.0))


def test_read_geoslice_takes_one_value(cog) -> None:
    reader = run(AsyncGeoTIFFReader.open(cog))
    one = run(reader.read_geoslice(np.s_[10:50, -5:40]))
    two = run(reader.read_geoslice(slice(10, 50), slice(-5, 40)))
    window = run(reader.read_window(Window(-5, 10, 45, 40)))
    assert same_pixels(one.values, window.values) and same_pixels(two.values, window.values)
    assert one.transform == window.transform
    with pytest.raises(WindowError, match="geoslice"):
        run(reader.read_geoslice((slice(0, 5),)))  # type: ignore[arg-type]


def test_both_readers_read_the_same_geoslice(cog) -> None:
    """`read_geoslice` is on both Protocols: the GDAL reader reads the same value the same way
    (one slice pair, two slices, an empty slice)."""
    reader = run(AsyncGeoTIFFReader.open(cog))
    with RasterioReader(cog) as ref:
        for key in (np.s_[10:50, -5:40], np.s_[200:230, 290:310], np.s_[5:5, 0:10]):
            got, want = ref.read_geoslice(key), run(reader.read_geoslice(key))
            assert got.values.shape == want.values.shape and got.transform == want.transform
            assert same_pixels(got.values, want.values)
        assert same_pixels(ref.read_geoslice(slice(10, 50), slice(0, 8)).values,
                           ref.read_window(Window(0, 10, 8, 40)).values)
        with pytest.raises(WindowError, match="geoslice"):
            ref.read_geoslice((slice(0, 5),))  # type: ignore[arg-type]


class _SyncReads:
    """Has the whole surface, but its reads are plain functions."""

    def __getattr__(self, name: str) -> Any:  # not seen by static lookups
        raise AssertionError("isinstance must not read attributes")


def test_conforms_is_true_only_for_conforming_readers(cog) -> None:
    """The Protocols are plain (no metaclass, issue 20 item 7): `conforms` is the run-time
    check that `isinstance` was, with the same assertions."""
    unopened = AsyncGeoTIFFReader(cog)
    assert conforms(unopened, AsyncGeoData)  # properties would raise: never read
    assert conforms(unopened, GeoMetadata)
    assert not conforms(unopened, GeoData)  # its reads are coroutines
    with RasterioReader(cog) as ref:
        assert conforms(ref, GeoData)
        assert not conforms(ref, AsyncGeoData)
    for other in (object(), 3, "x.tif", None, _SyncReads(), AsyncGeoTIFFReader):
        assert not conforms(other, AsyncGeoData)
        assert not conforms(other, GeoData)


def test_the_protocols_are_plain_and_list_the_same_reads() -> None:
    """No metaclass; the sync and async contracts list the same metadata and reads."""
    assert type(AsyncGeoData) is type(GeoData) is type(typing.Protocol)
    reads = {"read_window", "read_bounds", "read_geoslice", "load"}
    assert reads <= set(vars(GeoData)) and reads <= set(vars(AsyncGeoData))


def test_rasterio_reader_does_no_io_until_opened(cog, tmp_path) -> None:
    """No I/O in `__init__`: a missing file is an error at `open()` (or `with`, or first use),
    naming the path; an opened reader reads as before."""
    from georeader import GeoreaderError

    missing = tmp_path / "missing.tif"
    reader = RasterioReader(missing)  # nothing read yet
    with pytest.raises(GeoreaderError, match="missing.tif"):
        reader.open()
    with pytest.raises(GeoreaderError, match="missing.tif"):
        RasterioReader(missing).load()
    lazy, opened = RasterioReader(cog), RasterioReader(cog).open()
    assert same_pixels(lazy.load().values, opened.load().values)
    assert lazy.bands == opened.bands == [1, 2]


def test_no_file_system_access_in_any_readers_init(tmp_path) -> None:
    """No I/O in `__init__` (issue 20 item 7): a folder is not even looked at until the reader
    opens, which refuses it by name (it used to be a stat in `__init__`)."""
    from georeader import InvalidURLError

    reader, ref = AsyncGeoTIFFReader(tmp_path), RasterioReader(tmp_path)  # nothing touched yet
    with pytest.raises(InvalidURLError, match="folder"):
        run(reader.__aenter__())
    with pytest.raises(InvalidURLError, match="folder"):
        ref.open()
