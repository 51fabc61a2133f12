"""The xarray backend: xr.open_dataarray / open_dataset(url, engine="daskcog")."""

from __future__ import annotations

import pickle
from pathlib import Path

import dask
import numpy as np
import pytest
import rasterio

xr = pytest.importorskip("xarray")
rioxarray = pytest.importorskip("rioxarray")

from daskcog.reading.xarray_backend import DaskcogBackendArray, DaskcogBackendEntrypoint  # noqa: E402
from georeader.errors import ObjectNotFoundError, UnknownOptionError, WindowError  # noqa: E402
from tests.cogfactory import TiffSpec, cached_tiff, expected_pixels  # noqa: E402
from tests.conftest import REAL_DIR  # noqa: E402

pytestmark = pytest.mark.timeout(120)

SPEC = TiffSpec(
    dtype="uint16",
    width=700,
    height=530,
    count=2,
    nodata=0,
    overviews=(2, 4),
    blockxsize=128,
    blockysize=64,
)


@pytest.fixture(scope="module")
def path(tiff_cache: Path) -> Path:
    return cached_tiff(SPEC, tiff_cache)


class CountComputes(dask.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def _start(self, dsk) -> None:  # noqa: ANN001
        self.count += 1


def test_registered_engine() -> None:
    assert "daskcog" in xr.backends.list_engines()
    assert isinstance(xr.backends.list_engines()["daskcog"], DaskcogBackendEntrypoint)


def test_open_dataarray_is_lazy_and_exact(path: Path) -> None:
    with CountComputes() as counter:
        array = xr.open_dataarray(path, engine="daskcog", chunks=256)
    assert counter.count == 0, "nothing is computed at open"
    assert isinstance(array.data, dask.array.Array)
    assert array.dims == ("band", "y", "x") and array.shape == (2, 530, 700)
    assert array.chunks == ((2,), (256, 256, 18), (256, 256, 188))
    np.testing.assert_array_equal(array.values, expected_pixels(SPEC).data)


def test_georeference_read_back_by_rioxarray(path: Path) -> None:
    array = xr.open_dataarray(path, engine="daskcog", chunks=256)
    reference = rioxarray.open_rasterio(path)
    with rasterio.open(path) as src:
        assert array.rio.crs == src.crs
        assert array.rio.transform() == src.transform
        assert array.rio.nodata == src.nodata == 0
    np.testing.assert_array_equal(array.x.values, reference.x.values)  # pixel centres
    np.testing.assert_array_equal(array.y.values, reference.y.values)
    assert list(array.band.values) == [1, 2]


@pytest.mark.parametrize("chunks", ["auto", {}])
def test_default_chunks_follow_tiles(path: Path, chunks) -> None:  # noqa: ANN001
    array = xr.open_dataarray(path, engine="daskcog", chunks=chunks)
    assert all(c % 64 == 0 for c in array.chunks[1][:-1])
    assert all(c % 128 == 0 for c in array.chunks[2][:-1])
    np.testing.assert_array_equal(array.values, expected_pixels(SPEC).data)


def test_dict_chunks_per_dimension(path: Path) -> None:
    array = xr.open_dataarray(path, engine="daskcog", chunks={"band": 1, "y": 128, "x": 256})
    assert array.chunks[0] == (1, 1)
    assert set(array.chunks[1][:-1]) == {128} and set(array.chunks[2][:-1]) == {256}
    np.testing.assert_array_equal(array.values, expected_pixels(SPEC).data)


def test_without_chunks_indexing_reads_only_what_is_asked(path: Path) -> None:
    array = xr.open_dataarray(path, engine="daskcog")
    expected = expected_pixels(SPEC).data
    np.testing.assert_array_equal(
        array.isel(band=1, y=slice(3, 300, 7), x=5).values, expected[1, 3:300:7, 5]
    )
    np.testing.assert_array_equal(array[:, 100:140, 600:].values, expected[:, 100:140, 600:])
    np.testing.assert_array_equal(array.isel(x=[5, 1, 3]).values, expected[:, :, [5, 1, 3]])


def test_open_dataset_with_overview_and_bands(path: Path) -> None:
    ds = xr.open_dataset(path, engine="daskcog", chunks={}, overview_level=1, bands=[2])
    assert list(ds.data_vars) == ["band_data"]
    with rasterio.open(path, overview_level=0) as src:  # rasterio's first overview = our level 1
        np.testing.assert_array_equal(ds.band_data.values, src.read([2]))
        assert ds.band_data.rio.transform() == src.transform
    assert list(ds.band.values) == [2]
    via_backend_kwargs = xr.open_dataset(
        path, engine="daskcog", chunks={}, backend_kwargs={"overview_level": 2}
    )
    assert via_backend_kwargs.band_data.shape == (2, 133, 175)


def test_store_options_reach_the_store(path: Path) -> None:
    """Local files take no store options: the error proves they got through, both ways
    (issue 19: refused as unknown keywords, a TypeError, at call time)."""
    with pytest.raises(UnknownOptionError, match="region"):
        xr.open_dataarray(path, engine="daskcog", region="eu-west-1")
    with pytest.raises(UnknownOptionError, match="client_options"):
        xr.open_dataarray(
            path,
            engine="daskcog",
            backend_kwargs={"store_options": {"client_options": {"allow_http": True}}},
        )


def test_errors_name_the_file(tmp_path: Path, path: Path) -> None:
    with pytest.raises(ObjectNotFoundError, match="missing.tif"):
        xr.open_dataarray(tmp_path / "missing.tif", engine="daskcog")
    with pytest.raises(WindowError, match="overview_level 9"):
        xr.open_dataarray(path, engine="daskcog", overview_level=9)


def test_backend_array_pickles_as_plain_values(path: Path) -> None:
    import daskcog

    array = xr.open_dataarray(path, engine="daskcog", chunks=256)
    again = pickle.loads(pickle.dumps(array))
    np.testing.assert_array_equal(again.values, expected_pixels(SPEC).data)
    backend = DaskcogBackendArray(daskcog.open(path).source)
    assert len(pickle.dumps(backend)) < 2000, "a ReadSpec of plain values, no reader or store"


def test_striped_real_file_through_the_rasterio_route() -> None:
    path = REAL_DIR / "landsat7_rgb_uncompressed_striped.tif"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    array = xr.open_dataarray(path, engine="daskcog", chunks={})
    with rasterio.open(path) as src:
        np.testing.assert_array_equal(array.values, src.read())
        assert array.rio.transform() == src.transform
