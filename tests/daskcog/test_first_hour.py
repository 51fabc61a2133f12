"""What a new user meets outside STAC (issue 19, items 3-5): each test failed before.

Silently accepted before: `resolution=0` (full resolution), `open("")` (the current
folder), bounds in the wrong CRS (a 1 x 1 array of fill), `np.asarray(GeoArray)` (a 0-d
object array). Refused before where dask / rasterio users expect them to work:
`chunks="64MiB"`, `bands=1`. Missing: `daskcog.__version__`. `to_xarray()` was named
after a dask key.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest

import daskcog
from georeader import RasterioReader
from georeader.errors import (
    BoundsOutsideError,
    GeoreaderError,
    InvalidURLError,
    OptionValueError,
    UnknownOptionError,
    WindowError,
)


@pytest.mark.parametrize("resolution", [0, -10, float("nan"), (10, 0), "10", True])
def test_open_refuses_resolutions_that_are_no_pixel_size(gen_paths, resolution) -> None:
    with pytest.raises(WindowError, match="resolution"):
        daskcog.open(gen_paths["overviews-nan"], resolution=resolution)


def test_open_resolution_still_picks_an_overview(gen_paths) -> None:
    assert daskcog.open(gen_paths["overviews-nan"], resolution=25).res[0] == 20.0


@pytest.mark.parametrize("path", ["", "   "])
def test_open_empty_path_is_refused(path) -> None:
    with pytest.raises(InvalidURLError, match="empty"):
        daskcog.open(path)


def test_open_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidURLError, match="folder"):
        daskcog.open(tmp_path)


def test_bands_int_is_rasterios_indexes(gen_paths) -> None:
    path = gen_paths["mask"]
    one = daskcog.open(path, bands=2)
    assert one.shape[0] == 1 and one.bands == (2,)
    np.testing.assert_array_equal(
        one.compute().values, daskcog.open(path, bands=[2]).compute().values
    )


@pytest.mark.parametrize("bands", [0, -1, [1, 0], True, "1", []])
def test_bad_bands_are_refused(gen_paths, bands) -> None:
    with pytest.raises(WindowError, match="bands"):
        daskcog.open(gen_paths["mask"], bands=bands)


def test_byte_size_chunks_like_dask(gen_paths) -> None:
    path = gen_paths["multi-tile"]  # 300 x 217 uint16, 64 x 32 tiles
    small = daskcog.open(path, chunks="16KiB")
    biggest = max(c for c in small.chunks[1]) * max(c for c in small.chunks[2]) * 2
    assert small.data.npartitions > 1 and biggest <= 2 * 16 * 1024
    assert daskcog.open(path, chunks="64MiB").data.npartitions == 1
    assert daskcog.open(path, chunks={"y": "16KiB"}).data.npartitions > 1


def test_bad_chunk_string_is_refused(gen_paths) -> None:
    with pytest.raises(WindowError, match="byte size"):
        daskcog.open(gen_paths["multi-tile"], chunks="64 giraffes")


def test_np_asarray_computes(gen_paths) -> None:
    path = gen_paths["multi-tile"]
    values = np.asarray(daskcog.open(path, chunks=64))
    assert values.shape == (1, 217, 300) and values.dtype == np.uint16
    np.testing.assert_array_equal(values, RasterioReader(path).load().values)
    assert np.asarray(daskcog.open(path), dtype="float64").dtype == np.float64


def test_to_xarray_name_is_band_data(gen_paths) -> None:
    pytest.importorskip("xarray")
    g = daskcog.open(gen_paths["multi-tile"], chunks=64)
    assert g.to_xarray().name == "band_data"
    assert g.to_xarray(name="red").name == "red"
    assert g.to_xarray(name=None).name is None


def test_version() -> None:
    assert daskcog.__version__ == importlib.metadata.version("daskcog")


def test_sel_bounds_in_degrees_on_a_utm_file(gen_paths) -> None:
    g = daskcog.open(gen_paths["multi-tile"])
    with pytest.raises(BoundsOutsideError, match=r"EPSG:32633.*degrees") as info:
        g.sel_bounds((14.0, 45.0, 14.1, 45.1))
    assert "(14.0, 45.0, 14.1, 45.1)" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_sel_bounds_partly_outside_still_boundless(gen_paths) -> None:
    g = daskcog.open(gen_paths["multi-tile"])
    left, bottom, right, top = g.bounds
    sub = g.sel_bounds((left - 100, bottom, left + 100, top))
    assert sub.width == 20


def test_mosaic_bounds_outside_every_scene(gen_paths) -> None:
    with pytest.raises(BoundsOutsideError, match=r"mosaic: bounds .*EPSG:32633"):
        daskcog.mosaic([gen_paths["multi-tile"]], bounds=(14.0, 45.0, 14.1, 45.1))


@pytest.mark.parametrize("resolution", [0, -10])
def test_mosaic_and_stack_refuse_bad_resolution(gen_paths, resolution) -> None:
    with pytest.raises(WindowError, match="resolution"):
        daskcog.mosaic([gen_paths["multi-tile"]], resolution=resolution)
    with pytest.raises(WindowError, match="resolution"):
        daskcog.stack([gen_paths["multi-tile"]], resolution=resolution)


def test_mosaic_bands_int(gen_paths) -> None:
    assert daskcog.mosaic([gen_paths["mask"]], bands=3).shape[0] == 1


@pytest.mark.parametrize("keywords", [{"errors": "skip"}, {"loop": "main"}])
def test_open_option_values_are_typed_errors(gen_paths, keywords) -> None:
    with pytest.raises(OptionValueError, match=next(iter(keywords))):
        daskcog.open(gen_paths["multi-tile"], **keywords)


def test_open_store_object_is_a_typed_type_error(gen_paths) -> None:
    with pytest.raises(UnknownOptionError, match="live store objects"):
        daskcog.open(gen_paths["multi-tile"], store=object())


@pytest.mark.parametrize(
    "keywords, message",
    [
        ({"loop": "main"}, "loop"),
        ({"dtype": "float99"}, "dtype"),
        ({"warp_tolerance": -1}, "warp_tolerance"),
        ({"crs": "EPSG:99999"}, "crs"),
        ({"method": "maximum"}, "maximum"),
    ],
)
def test_mosaic_option_values_refused_at_call_time(gen_paths, keywords, message) -> None:
    with pytest.raises(GeoreaderError, match=message) as info:
        daskcog.mosaic([gen_paths["multi-tile"]], **keywords)
    assert isinstance(info.value, ValueError)


def test_xarray_backend_bands_int(gen_paths) -> None:
    xr = pytest.importorskip("xarray")
    array = xr.open_dataarray(gen_paths["mask"], engine="daskcog", bands=2)
    assert list(array.band.values) == [2]


def test_np_asarray_of_a_stack(gen_paths) -> None:
    path = gen_paths["multi-tile"]
    values = np.asarray(daskcog.stack([path, path]))
    assert values.shape == (2, 1, 217, 300)
    np.testing.assert_array_equal(values[1], RasterioReader(path).load().values)
