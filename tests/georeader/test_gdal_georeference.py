"""Every file's georeference, overviews, sample type and nodata as GDAL reads them (issue 18).

Each case is a file written here (rasterio for CRSs GDAL encodes as user-defined GeoKeys,
tifffile for raw GeoKeys and IFD layouts GDAL does not write) and compared with rasterio:
CRS (pyproj equality), transform, nodata, overview list and pixels. Before issue 18,
async-geotiff's own GeoKey parser placed six of the seven CRS cases wrongly (3 km to
9,600 km) or refused them; overviews were every IFD after the first, in size order on
the native route and in file order on the GDAL route.
"""

from __future__ import annotations

import asyncio
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.crs import CRS as RioCRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from georeader import AsyncGeoTIFFReader, NoGeoreferenceError, RasterioReader
from georeader.geo.nodata import NodataOutOfRangeWarning
from georeader.header import gdal_rules, ifd_walk

tifffile = pytest.importorskip("tifffile")

PROJ = {
    "mercator_2sp": "+proj=merc +lat_ts=30 +lon_0=10 +x_0=1000 +y_0=2000 +ellps=WGS84 +units=m",
    "paris_meridian_lcc": (
        "+proj=lcc +lat_1=46.8 +lat_0=46.8 +lon_0=0 +k_0=0.99987742 +x_0=600000 +y_0=2200000 "
        "+a=6378249.2 +b=6356515 +pm=paris +units=m"
    ),
    "hotine_a": (
        "+proj=omerc +no_uoff +lat_0=4 +lonc=115 +alpha=53.3158204722 +gamma=53.1301023611 "
        "+k=0.99984 +x_0=590476.87 +y_0=442857.65 +ellps=evrstSS +units=m"
    ),
    "laborde": (
        "+proj=labrd +lat_0=-18.9 +lon_0=44.1 +azi=18.9 +k_0=0.9995 +x_0=400000 +y_0=800000 "
        "+ellps=intl +units=m"
    ),
    "polar_stereographic_a": (
        "+proj=stere +lat_0=90 +lon_0=0 +k=0.994 +x_0=2000000 +y_0=2000000 +datum=WGS84 +units=m"
    ),
    "user_defined_tm_us_feet": (
        "+proj=tmerc +lat_0=0 +lon_0=-120 +k=0.9996 +x_0=1640416.667 +y_0=0 +datum=NAD83 "
        "+units=us-ft"
    ),
}
PIXELS = (np.arange(64 * 64) % 251).astype("uint8").reshape(64, 64)


def run(coro):
    return asyncio.run(coro)


def write_rasterio(path: Path, crs, **kw) -> Path:
    profile = dict(
        driver="GTiff", width=64, height=64, count=1, dtype="uint8", crs=crs,
        transform=Affine(30, 0, 500000, 0, -30, 4000000), tiled=True, blockxsize=32,
        blockysize=32,
    )
    profile.update(kw)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(PIXELS[np.newaxis].astype(profile["dtype"]))
    return path


def geo_tags(keys: list[int], doubles=None, nodata: str | None = None, tie=(0, 0)) -> list:
    tags = [
        (33550, "d", 3, (30.0, 30.0, 0.0), True),
        (33922, "d", 6, (tie[0], tie[1], 0, 500000, 4000000, 0), True),
        (34735, "H", len(keys), tuple(keys), True),
    ]
    if doubles:
        tags.append((34736, "d", len(doubles), tuple(doubles), True))
    if nodata is not None:
        tags.append((42113, "s", 0, nodata, True))
    return tags


def directory(*entries: tuple[int, int]) -> list[int]:
    """A GeoKeyDirectory of SHORT values: (key, value) pairs."""
    keys = [1, 1, 0, len(entries)]
    for key, value in entries:
        keys += [key, 0, 1, value]
    return keys


def assert_like_gdal(path: Path) -> AsyncGeoTIFFReader:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        reader = run(AsyncGeoTIFFReader.open(path))
        src = rasterio.open(path)
    with src:
        want_crs = None if src.crs is None else CRS.from_wkt(src.crs.to_wkt())
        assert reader.crs == want_crs, path.name
        assert tuple(reader.transform)[:6] == tuple(src.transform)[:6], path.name
        assert reader.nodata == src.nodata or (
            reader.nodata is not None and math.isnan(reader.nodata) and math.isnan(src.nodata)
        )
        assert reader.overview_count == len(src.overviews(1))
        if want_crs is not None:  # the same corners on the ground, to 1 mm
            for col, row in ((0, 0), (64, 64)):
                x, y = reader.transform * (col, row)
                xr, yr = src.transform * (col, row)
                assert math.hypot(x - xr, y - yr) < 1e-3
    return reader


# -- CRSs built from GeoKeys -------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PROJ))
def test_user_defined_projections_as_gdal_reads_them(tmp_path: Path, name: str) -> None:
    path = write_rasterio(tmp_path / f"{name}.tif", RioCRS.from_proj4(PROJ[name]))
    reader = assert_like_gdal(path)
    assert reader.crs is not None


def test_linear_units_next_to_an_epsg_code(tmp_path: Path) -> None:
    """ProjectedCSType 32611 (metres) with ProjLinearUnits 9003 (US survey feet): GDAL
    honours the units; async-geotiff took the EPSG code alone."""
    path = tmp_path / "epsg_usft.tif"
    keys = directory((1024, 1), (1025, 1), (3072, 32611), (3076, 9003))
    tifffile.imwrite(path, PIXELS, tile=(32, 32), extratags=geo_tags(keys))
    reader = assert_like_gdal(path)
    assert reader.crs != CRS.from_epsg(32611)
    assert reader.crs.axis_info[0].unit_name == "US survey foot"


def test_tiepoint_away_from_pixel_zero_and_pixel_is_point(tmp_path: Path) -> None:
    keys = directory((1024, 1), (1025, 2), (3072, 32631))
    path = tmp_path / "tie.tif"
    tifffile.imwrite(path, PIXELS, tile=(32, 32), extratags=geo_tags(keys, tie=(10, 5)))
    reader = assert_like_gdal(path)
    assert reader.crs == CRS.from_epsg(32631)


@pytest.mark.parametrize(
    "code", [4326, 32631, 3857, 2227, 27572, 3035, 4269, 2154, 32761, 5070]
)
def test_plain_epsg_fast_path_gives_gdals_answer(tmp_path: Path, code: int) -> None:
    path = write_rasterio(tmp_path / f"epsg{code}.tif", f"EPSG:{code}", nodata=7)
    data = path.read_bytes()

    async def read(start: int, length: int) -> bytes:
        return data[start : start + length]

    walk = run(ifd_walk.walk_header(read, data[:65536], str(path)))
    fast = gdal_rules.georeference(walk)
    assert fast.source == "epsg"
    slow = gdal_rules.georeference_by_gdal(walk)
    assert (fast.crs, fast.transform, fast.nodata) == (slow.crs, slow.transform, slow.nodata)
    assert_like_gdal(path)


@pytest.mark.parametrize(
    ("name", "nodata", "dtype"),
    [
        ("msvc_inf", "1.#INF", "float32"),
        ("minus_msvc_inf", "-1.#INF", "float32"),
        ("empty", "", "float32"),
        ("nan", "nan", "float32"),
        ("spaces", " 12 ", "uint8"),
    ],
)
def test_nodata_strings_as_gdal_parses_them(
    tmp_path: Path, name: str, nodata: str, dtype: str
) -> None:
    keys = directory((1024, 1), (1025, 1), (3072, 32631))
    path = tmp_path / f"{name}.tif"
    tifffile.imwrite(
        path, PIXELS.astype(dtype), tile=(32, 32), extratags=geo_tags(keys, nodata=nodata)
    )
    reader = assert_like_gdal(path)
    with RasterioReader(path) as ref:
        got = run(reader.load()).values
        want = ref.load().values
        assert np.array_equal(got, want, equal_nan=True)


@pytest.mark.parametrize(
    ("dtype", "nodata"), [("uint8", -10000), ("uint16", "nan"), ("uint8", -1), ("uint8", 300)]
)
def test_nodata_that_cannot_occur_masks_nothing(tmp_path: Path, dtype: str, nodata) -> None:
    """GDAL masks nothing (and rasterio reports no nodata); every read used to fail."""
    keys = directory((1024, 1), (1025, 1), (3072, 32631))
    path = tmp_path / "bad_nodata.tif"
    tifffile.imwrite(
        path, PIXELS.astype(dtype), tile=(32, 32), extratags=geo_tags(keys, nodata=str(nodata))
    )
    with pytest.warns(NodataOutOfRangeWarning, match="cannot occur"):
        reader = run(AsyncGeoTIFFReader.open(path))
    with rasterio.open(path) as src:
        assert reader.nodata is None and src.nodata is None
        masked = src.read(1, masked=True)
        assert not np.ma.is_masked(masked)
    got = run(reader.read_window(Window(-8, -8, 80, 80)))
    assert got.fill_value_default == 0
    assert np.array_equal(got.values[0, 8:72, 8:72], PIXELS.astype(dtype))
    assert (got.values[0, :8] == 0).all()
    with RasterioReader(path) as ref:
        assert np.array_equal(ref.load().values, run(reader.load()).values)


# -- GeoKeys GDAL can place, plain TIFFs, GCPs -----------------------------------------------
def test_esri_user_defined_model_and_ellipsoid_are_read(tmp_path: Path) -> None:
    """User-defined geographic CRS (32767) on a user-defined ellipsoid: GDAL places it."""
    keys = [1, 1, 0, 5, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 32767,
            2056, 0, 1, 32767, 2057, 34736, 1, 0]
    keys[3] = 5
    keys += [2059, 34736, 1, 1]
    keys[3] = 6
    tags = geo_tags(keys, doubles=[6378000.0, 298.0])
    tags[0] = (33550, "d", 3, (0.01, 0.01, 0.0), True)
    tags[1] = (33922, "d", 6, (0, 0, 0, 10.0, 50.0, 0), True)
    path = tmp_path / "user_ellipsoid.tif"
    tifffile.imwrite(path, PIXELS, tile=(32, 32), extratags=tags)
    reader = assert_like_gdal(path)
    assert reader.crs is not None
    assert reader.crs.ellipsoid.semi_major_metre == 6378000.0


def test_geos_projection_is_read(tmp_path: Path) -> None:
    crs = RioCRS.from_proj4("+proj=geos +h=35785831 +lon_0=0 +ellps=WGS84 +units=m")
    path = write_rasterio(tmp_path / "geos.tif", crs)
    assert_like_gdal(path)


def test_plain_tiff_reads_like_rasterio(tmp_path: Path) -> None:
    """No GeoKeys: identity transform, no CRS, a NotGeoreferencedWarning (refused before)."""
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, PIXELS, tile=(32, 32))
    with pytest.warns(NotGeoreferencedWarning, match="plain.tif"):
        reader = run(AsyncGeoTIFFReader.open(path))
    assert reader.crs is None and reader.transform == Affine.identity()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        assert_like_gdal(path)
        with RasterioReader(path) as ref:
            assert np.array_equal(run(reader.load()).values, ref.load().values)


def test_plain_tiff_is_refused_by_mosaics_with_a_typed_error(tmp_path: Path) -> None:
    from daskcog.mosaics.scenes import Scene

    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, PIXELS, tile=(32, 32))
    with pytest.warns(NotGeoreferencedWarning):
        reader = run(AsyncGeoTIFFReader.open(path))
    with pytest.raises(NoGeoreferenceError, match="no CRS"):
        Scene.from_opened(reader.opened_file)


def test_gcps_only_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "gcps.tif"
    keys = directory((1024, 2), (1025, 1), (2048, 4326))
    tags = [
        (33922, "d", 12, (0, 0, 0, 10.0, 50.0, 0, 64, 64, 0, 10.5, 49.5, 0), True),
        (34735, "H", len(keys), tuple(keys), True),
    ]
    tifffile.imwrite(path, PIXELS, tile=(32, 32), extratags=tags)
    with pytest.raises(NoGeoreferenceError, match="GCPs"):
        run(AsyncGeoTIFFReader.open(path))


# -- complex samples ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dtype", "numpy_type"),
    [("complex_int16", "complex64"), ("complex64", "complex64"), ("complex128", "complex128")],
)
def test_complex_samples_read_as_gdal_reads_them(tmp_path: Path, dtype: str, numpy_type) -> None:
    path = tmp_path / f"{dtype}.tif"
    values = (PIXELS + 1j * PIXELS[::-1]).astype("complex64")[np.newaxis]
    profile = dict(
        driver="GTiff", width=64, height=64, count=1, dtype=dtype, crs="EPSG:32631",
        transform=Affine(10, 0, 5e5, 0, -10, 4e6), tiled=True, blockxsize=32, blockysize=32,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values)
    reader = run(AsyncGeoTIFFReader.open(path))
    assert reader.dtype == np.dtype(numpy_type)
    with rasterio.open(path) as src:
        want = src.read()
    got = run(reader.load()).values
    assert got.dtype == want.dtype and np.array_equal(got, want)
    window = run(reader.read_window(Window(-4, 60, 10, 10))).values
    assert np.array_equal(window[:, :4, 4:], want[:, 60:64, :6])
    assert (window[:, 4:] == 0).all()


# -- overviews ---------------------------------------------------------------------------------
GEOKEYS = geo_tags(directory((1024, 1), (1025, 1), (3072, 32631)))
BIG = (np.arange(256 * 256) % 65521).astype("uint16").reshape(256, 256)


def _write_levels(path: Path, pages: list[tuple[np.ndarray, int]], *, tiled: bool) -> Path:
    tile = {"tile": (64, 64)} if tiled else {"rowsperstrip": 16}
    with tifffile.TiffWriter(path) as tif:
        for i, (data, subfiletype) in enumerate(pages):
            extra = {"extratags": GEOKEYS} if i == 0 else {}
            tif.write(data, subfiletype=subfiletype, **tile, **extra)
    return path


def _check_levels(path: Path, sizes: list[tuple[int, int]]) -> AsyncGeoTIFFReader:
    reader = assert_like_gdal(path)
    assert [(lvl.width, lvl.height) for lvl in reader.levels] == sizes
    with rasterio.open(path) as src:
        gdal_sizes = []
        for index in range(len(src.overviews(1))):
            with rasterio.open(path, OVERVIEW_LEVEL=index) as ovr:
                gdal_sizes.append(((ovr.width, ovr.height), ovr.read()))
    for level in range(1, reader.overview_count + 1):
        ours = reader.overview(level)
        (want,) = [px for size, px in gdal_sizes if size == (ours.width, ours.height)]
        assert np.array_equal(run(ours.load()).values, want), f"level {level}"
        with RasterioReader(path, overview_level=level) as ref:
            assert (ref.width, ref.height) == (ours.width, ours.height)
            assert np.array_equal(ref.load().values, want)
    return reader


@pytest.mark.parametrize("tiled", [True, False], ids=["native", "gdal-route"])
def test_second_page_is_not_an_overview(tmp_path: Path, tiled: bool) -> None:
    path = _write_levels(tmp_path / "pages.tif", [(BIG, 0), (BIG[::-1].copy(), 0)], tiled=tiled)
    reader = _check_levels(path, [(256, 256)])
    assert reader.overview_count == 0


@pytest.mark.parametrize("tiled", [True, False], ids=["native", "gdal-route"])
def test_overviews_stored_smallest_first(tmp_path: Path, tiled: bool) -> None:
    pages = [(BIG, 0), (BIG[::4, ::4].copy(), 1), (BIG[::2, ::2].copy(), 1)]
    path = _write_levels(tmp_path / "smallest_first.tif", pages, tiled=tiled)
    with rasterio.open(path) as src:
        assert src.overviews(1) == [4, 2]  # GDAL's order: the file's
    reader = _check_levels(path, [(256, 256), (128, 128), (64, 64)])
    assert reader.layout.route == ("native" if tiled else "rasterio")


def test_overviews_in_subifds(tmp_path: Path) -> None:
    path = tmp_path / "subifds.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(BIG, tile=(64, 64), subifds=2, extratags=GEOKEYS)
        tif.write(BIG[::2, ::2].copy(), tile=(64, 64), subfiletype=1)
        tif.write(BIG[::4, ::4].copy(), tile=(64, 64), subfiletype=1)
    reader = _check_levels(path, [(256, 256), (128, 128), (64, 64)])
    assert reader.layout.route == "rasterio"


def test_multipage_with_overviews_after_a_second_page(tmp_path: Path) -> None:
    pages = [(BIG, 0), (BIG[::2, ::2].copy(), 1), (BIG[::-1].copy(), 0)]
    path = _write_levels(tmp_path / "mixed.tif", pages, tiled=True)
    _check_levels(path, [(256, 256), (128, 128)])


def _keys(*entries: tuple[int, int, int, int]) -> list[int]:
    """A GeoKeyDirectory from (key, location, count, value-or-index) entries."""
    keys = [1, 1, 0, len(entries)]
    for entry in entries:
        keys += list(entry)
    return keys


ESRI_CASES = {
    # ESRI writes model type 32767 beside an EPSG code: GDAL uses the code
    "esri_model_32767": (_keys((1024, 0, 1, 32767), (1025, 0, 1, 1), (3072, 0, 1, 32631)), None),
    # the EPSG method code (Hotine B) where a GeoTIFF CT code belongs
    "coord_trans_9815": (
        _keys(
            (1024, 0, 1, 1), (1025, 0, 1, 1), (2048, 0, 1, 4326), (3072, 0, 1, 32767),
            (3074, 0, 1, 32767), (3075, 0, 1, 9815), (3076, 0, 1, 9001), (3081, 34736, 1, 0),
            (3088, 34736, 1, 1), (3094, 34736, 1, 2), (3095, 34736, 1, 3), (3082, 34736, 1, 4),
            (3083, 34736, 1, 5), (3092, 34736, 1, 6),
        ),
        [4.0, 115.0, 53.3158204722, 53.1301023611, 590476.87, 442857.65, 0.99984],
    ),
    "coord_trans_28": (
        _keys(
            (1024, 0, 1, 1), (1025, 0, 1, 1), (2048, 0, 1, 4326), (3072, 0, 1, 32767),
            (3074, 0, 1, 32767), (3075, 0, 1, 28), (3076, 0, 1, 9001), (3080, 34736, 1, 0),
            (3081, 34736, 1, 1),
        ),
        [10.0, 45.0],
    ),
    "user_defined_ellipsoid_tm": (
        _keys(
            (1024, 0, 1, 1), (1025, 0, 1, 1), (2048, 0, 1, 32767), (2050, 0, 1, 32767),
            (2056, 0, 1, 32767), (2057, 34736, 1, 0), (2059, 34736, 1, 1), (3072, 0, 1, 32767),
            (3074, 0, 1, 32767), (3075, 0, 1, 1), (3076, 0, 1, 9001), (3080, 34736, 1, 2),
            (3081, 34736, 1, 3), (3082, 34736, 1, 4), (3083, 34736, 1, 5), (3092, 34736, 1, 6),
        ),
        [6378000.0, 297.0, 9.0, 0.0, 500000.0, 0.0, 0.9996],
    ),
}


@pytest.mark.parametrize("name", sorted(ESRI_CASES))
def test_georeferencing_gdal_can_place_is_read(tmp_path: Path, name: str) -> None:
    """Refused before issue 18 ("Unsupported GeoTIFF model type: 32767", "Unsupported
    coordinate transformation type: 9815 / 28") or built with the wrong ellipsoid."""
    keys, doubles = ESRI_CASES[name]
    path = tmp_path / f"{name}.tif"
    tifffile.imwrite(path, PIXELS, tile=(32, 32), extratags=geo_tags(keys, doubles=doubles))
    assert_like_gdal(path)
