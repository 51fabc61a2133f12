"""The output grid of `daskcog.load` against `odc.stac.load` given the same arguments.

Each case writes local COGs that match their items' metadata exactly (grids not
on multiples of the pixel size, like Landsat's; a uint8 band beside a uint16
one; two UTM zones) and compares odc-stac's Dataset with daskcog's
`to_dataset()`: the grid, `xr.align(join="exact")` of the coordinates, dims,
dtypes, nodata, CRS and pixels. Issue 17, items 3, 4, 5, 7, 13 and 14.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

import daskcog
from daskcog.stac import MixedCrsWarning, OutsideItemsWarning, StacError

pystac = pytest.importorskip("pystac")
odc_stac = pytest.importorskip("odc.stac")
xr = pytest.importorskip("xarray")

EXTENSIONS = [
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
]
ASSETS = {  # key: (common name, dtype, nodata)
    "B04": ("red", "uint16", 0),
    "SCL": (None, "uint8", 0),
}


def write_tif(path: Path, crs: str, transform: Affine, shape: tuple[int, int], dtype: str,
              nodata: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = shape
    hi = 200 if dtype == "uint8" else 9000
    data = rng.integers(1, hi, size=(1, height, width)).astype(dtype)
    data[:, height // 3 : height // 2, width // 4 : width // 3] = nodata  # a hole
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=1, dtype=dtype, crs=crs,
        transform=transform, nodata=nodata, tiled=True, blockxsize=64, blockysize=64,
        compress="deflate",
    ) as dst:
        dst.write(data)


def make_item(folder: Path, name: str, crs: str, transform: Affine, shape: tuple[int, int],
              when: dt.datetime, seed: int, assets: dict = ASSETS) -> dict:
    """An item whose COGs are written below `folder`, proj:* at asset level."""
    height, width = shape
    west, south, east, north = Transformer.from_crs(crs, "EPSG:4326", always_xy=True) \
        .transform_bounds(transform.c, transform.f + transform.e * height,
                          transform.c + transform.a * width, transform.f)
    out_assets = {}
    for k, (key, (common, dtype, nodata)) in enumerate(assets.items()):
        path = folder / f"{name}-{key}.tif"
        write_tif(path, crs, transform, shape, dtype, nodata, seed * 10 + k)
        band: dict = {"name": key}
        if common:
            band["common_name"] = common
        out_assets[key] = {
            "href": str(path), "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"], "eo:bands": [band],
            "raster:bands": [{"data_type": dtype, "nodata": nodata}],
            "proj:code": crs, "proj:shape": [height, width],
            "proj:transform": list(transform)[:6],
        }
    return {
        "type": "Feature", "stac_version": "1.0.0", "stac_extensions": EXTENSIONS, "id": name,
        "bbox": [west, south, east, north],
        "geometry": {"type": "Polygon", "coordinates": [[
            [west, south], [east, south], [east, north], [west, north], [west, south]]]},
        "properties": {"datetime": when.isoformat() + "Z", "eo:cloud_cover": float(seed)},
        "assets": out_assets, "links": [],
    }


T0 = dt.datetime(2024, 6, 1, 10, 0, 0)


@pytest.fixture(scope="module")
def landsat_like(tmp_path_factory) -> list[dict]:
    """30 m scenes whose origins are odd multiples of 15 m (Landsat's half-pixel anchor),
    overlapping, on two dates."""
    folder = tmp_path_factory.mktemp("landsat-like")
    out = []
    for k, (x0, y0, date) in enumerate(
        ((655305.0, 4_500_015.0, 0), (657705.0, 4_498_815.0, 0), (656205.0, 4_499_415.0, 1))
    ):
        out.append(make_item(folder, f"ls-{k}", "EPSG:32633", Affine(30, 0, x0, 0, -30, y0),
                             (150, 170), T0 + dt.timedelta(days=16 * date), k))
    return out


@pytest.fixture(scope="module")
def two_zones(tmp_path_factory) -> list[dict]:
    """Three 20 m scenes in zone 33 and one in zone 34, east of them."""
    folder = tmp_path_factory.mktemp("two-zones")
    out = []
    for k, x0 in enumerate((735_000.0, 736_000.0, 737_000.0)):
        out.append(make_item(folder, f"z33-{k}", "EPSG:32633",
                             Affine(20, 0, x0, 0, -20, 5_000_000.0), (100, 120), T0, k))
    out.append(make_item(folder, "z34-0", "EPSG:32634",
                         Affine(20, 0, 264_000.0, 0, -20, 5_000_400.0), (100, 120), T0, 9))
    return out


def odc(items: list[dict], **kw):
    return odc_stac.load([pystac.Item.from_dict(it) for it in items], chunks={}, **kw)


def ours(items: list[dict], **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return daskcog.load(items, **kw)


def assert_same(expected, got, *, pixels: bool = True) -> None:
    """Same grid, coordinates (exactly: `xr.align` works), dims, dtype, nodata, CRS, pixels."""
    assert got.odc.geobox == expected.odc.geobox
    xr.align(expected, got, join="exact")
    assert set(got.data_vars) == set(expected.data_vars)
    assert got.odc.crs == expected.odc.crs
    np.testing.assert_array_equal(got.time.values, expected.time.values)
    for name in expected.data_vars:
        e, g = expected[name], got[name]
        assert g.dims == e.dims, name
        assert g.dtype == e.dtype, name
        assert g.attrs.get("nodata") == e.attrs.get("nodata"), name
        for dim in e.dims:
            assert np.array_equal(g[dim].values, e[dim].values), dim  # bit for bit
        if pixels:
            np.testing.assert_array_equal(g.values, e.values, err_msg=name)


# -- item 3: anchors ----------------------------------------------------------------------
def test_grid_bbox_keeps_the_items_pixel_grid(landsat_like):
    """With bbox= and not both crs and resolution, the items' own grid (origin 655305 +
    30 k), not multiples of 30 (655290): no pixel is resampled."""
    bbox = (16.85, 40.61, 16.886, 40.631)
    expected = odc(landsat_like, bands=["red"], bbox=bbox)
    got = ours(landsat_like, bands=["red"], bbox=bbox).to_dataset()
    assert (got.odc.geobox.affine.c - 655305.0) % 30 == 0
    assert_same(expected, got)


def test_grid_without_bbox_is_the_same_grid(landsat_like):
    expected = odc(landsat_like, bands=["red"])
    got = ours(landsat_like, bands=["red"]).to_dataset()
    assert_same(expected, got)


@pytest.mark.parametrize("anchor", ["edge", "center", (0.25, 0.75)])
def test_grid_anchor(landsat_like, anchor):
    from odc.geo import xy_

    value = xy_(*anchor) if isinstance(anchor, tuple) else anchor
    expected = odc(landsat_like, bands=["red"], bbox=(16.85, 40.61, 16.886, 40.631),
                   anchor=value, resolution=60)
    got = ours(landsat_like, bands=["red"], bbox=(16.85, 40.61, 16.886, 40.631), anchor=anchor,
               resolution=60).to_dataset()
    assert_same(expected, got, pixels=False)  # 30 -> 60 m: the overview choice differs


def test_grid_crs_and_resolution_snap_to_multiples(landsat_like):
    kw = {"bands": ["red"], "bbox": (16.85, 40.61, 16.886, 40.631), "crs": "EPSG:32633",
          "resolution": 30}
    got = ours(landsat_like, **kw).to_dataset()
    assert got.odc.geobox.affine.c % 30 == 0
    assert_same(odc(landsat_like, **kw), got, pixels=False)  # resampled by half a pixel


# -- item 4: snapping -----------------------------------------------------------------------
def test_grid_snapping_tolerance_is_a_hundredth_of_a_pixel(landsat_like):
    """An edge 0.005 px past a grid line adds no sliver column (odc-geo's tolerance)."""
    kw = {"bands": ["red"], "crs": "EPSG:32633", "resolution": 30,
          "x": (656010.0, 659010.0 + 0.15), "y": (4_497_000.0, 4_499_010.0)}
    expected = odc(landsat_like, **kw)
    got = ours(landsat_like, **kw).to_dataset()
    assert got.odc.geobox.shape.x == 100
    assert_same(expected, got, pixels=False)


# -- item 5: coordinates ----------------------------------------------------------------------
def test_grid_geographic_output_coordinates_align_exactly(landsat_like):
    """EPSG:4326 output: dims latitude / longitude, coordinates odc-geo's to the last bit."""
    kw = {"bands": ["red"], "crs": "EPSG:4326", "resolution": 0.0003,
          "bbox": (16.85, 40.61, 16.886, 40.631)}
    expected = odc(landsat_like, **kw)
    got = ours(landsat_like, **kw).to_dataset()
    assert got["red"].dims == ("time", "latitude", "longitude")
    assert_same(expected, got, pixels=False)  # warped: GDAL vs odc-stac's ties differ


# -- item 7: dtypes -----------------------------------------------------------------------------
def test_grid_to_dataset_keeps_each_band_dtype(landsat_like):
    expected = odc(landsat_like, bands=["red", "SCL"])
    got = ours(landsat_like, bands=["red", "SCL"]).to_dataset()
    assert got["SCL"].dtype == np.uint8 and got["red"].dtype == np.uint16
    assert_same(expected, got)


# -- item 13: odc-stac's names ------------------------------------------------------------------
def test_grid_geobox_and_like(landsat_like):
    from odc.geo.geobox import GeoBox

    box = GeoBox.from_bbox((656000, 4_497_000, 659000, 4_499_000), "EPSG:32633",
                           resolution=30, anchor="center")  # on the items' pixels: no ties
    expected = odc(landsat_like, bands=["red"], geobox=box)
    assert_same(expected, ours(landsat_like, bands=["red"], geobox=box).to_dataset())
    # like= an odc-stac result, a daskcog Dataset / DataArray / stack, a GeoBox
    stack = ours(landsat_like, bands=["red"], geobox=box)
    for like in (expected, stack.to_dataset(), stack.to_xarray(), stack, box):
        assert_same(expected, ours(landsat_like, bands=["red"], like=like).to_dataset())
    with pytest.raises(StacError, match="leave out bbox="):
        ours(landsat_like, bands=["red"], geobox=box, bbox=(16, 40, 17, 41))


def test_grid_region_keywords(landsat_like):
    from shapely.geometry import box as shapely_box

    bbox = (16.85, 40.61, 16.886, 40.631)
    expected = odc(landsat_like, bands=["red"], bbox=bbox)
    for kw in (
        {"lon": (bbox[0], bbox[2]), "lat": (bbox[1], bbox[3])},
        {"geopolygon": shapely_box(*bbox)},
        {"intersects": shapely_box(*bbox).__geo_interface__},
    ):
        assert_same(expected, ours(landsat_like, bands=["red"], **kw).to_dataset())
        assert_same(odc(landsat_like, bands=["red"], **kw),
                    ours(landsat_like, bands=["red"], **kw).to_dataset())


def test_grid_utm_resolution_values_and_aliases(landsat_like):
    from odc.geo import resxy_

    kw = {"bbox": (16.85, 40.61, 16.886, 40.631), "resolution": resxy_(30, -30),
          "anchor": "center"}  # the items' pixels: no half-pixel ties
    expected = odc(landsat_like, bands=["red"], crs="utm", **kw)
    got = ours(landsat_like, measurements=["red"], output_crs="utm", **kw).to_dataset()
    assert got.odc.crs.epsg == 32633
    assert_same(expected, got)
    with pytest.raises(TypeError, match="not both"):
        ours(landsat_like, bands=["red"], measurements=["red"])


def test_grid_fail_on_error_progress_and_with_properties(landsat_like, tmp_path):
    items = [dict(it) for it in landsat_like]
    items[1] = {**items[1], "assets": {**items[1]["assets"]}}
    items[1]["assets"]["B04"] = {**items[1]["assets"]["B04"], "href": str(tmp_path / "gone.tif")}
    got = ours(items, bands=["red"], fail_on_error=False, progress=True,
               with_properties=["eo:cloud_cover"]).to_dataset()
    got["red"].values  # noqa: B018 - computes: the missing file is no data, not an error
    expected = odc(landsat_like, bands=["red"], with_properties=["eo:cloud_cover"])
    np.testing.assert_array_equal(got["eo_cloud_cover"].values,
                                  expected["eo_cloud_cover"].values)
    assert got["eo_cloud_cover"].dtype == expected["eo_cloud_cover"].dtype
    with pytest.raises(TypeError, match="errors= or fail_on_error="):
        ours(items, bands=["red"], fail_on_error=False, errors="nodata")


@pytest.mark.parametrize("name, hint", [
    ("pool", "dask.config"), ("align", "anchor="), ("fuse_func", "method="),
    ("dask_chunks", "chunks="), ("driver", "reader"),
])
def test_grid_odc_names_with_another_meaning_are_type_errors(landsat_like, name, hint):
    with pytest.raises(TypeError, match=f"{name}=.*{hint}"):
        ours(landsat_like, bands=["red"], **{name: 1})


# -- item 14: outside every item, several CRSs ---------------------------------------------------
def test_grid_bbox_outside_every_item_warns_and_equals_odc(landsat_like):
    bbox = (10.0, 45.1, 10.02, 45.12)
    expected = odc(landsat_like, bands=["red"], bbox=bbox)
    with pytest.warns(OutsideItemsWarning, match=r"bbox \(10.0, 45.1, 10.02, 45.12\)"):
        got = ours(landsat_like, bands=["red"], bbox=bbox).to_dataset()
    assert_same(expected, got)
    assert (got["red"].values == 0).all()
    from odc.geo.geobox import GeoBox

    away = GeoBox.from_bbox((100_000, 4_000_000, 103_000, 4_003_000), "EPSG:32633",
                            resolution=30)
    with pytest.warns(OutsideItemsWarning, match="geobox= grid misses every item"):
        got = ours(landsat_like, bands=["red"], geobox=away).to_dataset()
    assert_same(odc(landsat_like, bands=["red"], geobox=away), got)


def test_grid_several_crss_pick_the_most_common_with_a_warning(two_zones):
    expected = odc(two_zones, bands=["red"])
    with pytest.warns(MixedCrsWarning, match="loading in EPSG:32633"):
        got = ours(two_zones, bands=["red"]).to_dataset()
    assert_same(expected, got, pixels=False)
    same = got["red"].values == expected["red"].values
    assert same.mean() > 0.999  # GDAL's and odc-stac's nearest ties at the warped scene
    with warnings.catch_warnings():
        warnings.simplefilter("error", MixedCrsWarning)
        ours(two_zones, bands=["red"], crs="EPSG:32634")


# -- deliberate differences ------------------------------------------------------------------------
def test_grid_nearest_ties_follow_gdal_not_odc_stac(landsat_like):
    """A grid half a pixel off the items' (edges on multiples of 30 m, items on 15 + 30 k):
    every output pixel centre is a nearest-neighbour tie. daskcog's pixels are GDAL's
    warper's (the reference for what a file means); odc-stac rounds the ties the other way.
    Same grid and coordinates all the same."""
    from odc.geo.geobox import GeoBox
    from rasterio.warp import Resampling, reproject

    box = GeoBox.from_bbox((656010, 4_497_000, 659010, 4_499_010), "EPSG:32633", resolution=30)
    one = landsat_like[:1]
    expected = odc(one, bands=["red"], geobox=box)
    got = ours(one, bands=["red"], geobox=box).to_dataset()
    assert_same(expected, got, pixels=False)
    gdal = np.zeros(box.shape.yx, dtype=np.uint16)
    with rasterio.open(one[0]["assets"]["B04"]["href"]) as src:
        reproject(rasterio.band(src, 1), gdal, dst_transform=box.affine, dst_crs="EPSG:32633",
                  dst_nodata=0, resampling=Resampling.nearest)
    np.testing.assert_array_equal(got["red"].values[0], gdal)
    assert (got["red"].values != expected["red"].values).mean() > 0.5


def test_grid_other_crs_without_resolution_derives_the_pixel_size(landsat_like):
    """crs= other than the items' and no resolution=: daskcog sizes pixels as GDAL's
    suggested warp does (about 30 m in degrees); odc-stac takes the items' number (30) as
    degrees: one pixel covering the whole region."""
    expected = odc(landsat_like, bands=["red"], crs="EPSG:4326")
    got = ours(landsat_like, bands=["red"], crs="EPSG:4326").to_dataset()
    assert expected.odc.geobox.shape == (1, 1)
    assert 2e-4 < abs(got.odc.geobox.resolution.x) < 5e-4
    assert got["red"].dims == ("time", "latitude", "longitude")
    assert (got["red"].values != 0).mean() > 0.5


def test_grid_relative_hrefs_without_a_self_link_load(landsat_like, monkeypatch):
    """odc-stac refuses a relative href when the item has no self link to resolve it
    against; daskcog reads it as a path relative to the working directory."""
    item = {**landsat_like[0], "assets": {k: dict(v) for k, v in landsat_like[0]["assets"].items()}}
    path = Path(item["assets"]["B04"]["href"])
    item["assets"]["B04"]["href"] = f"./{path.name}"
    monkeypatch.chdir(path.parent)
    with pytest.raises(ValueError, match="absolute path"):
        odc([item], bands=["red"])
    got = ours([item], bands=["red"]).to_dataset()
    assert_same(odc(landsat_like[:1], bands=["red"]), got)


def test_grid_solar_day_uses_the_output_grids_longitude(tmp_path):
    """Two scenes either side of 15 E at 23:30 UTC: by their own centres they fall on two
    solar days; odc-stac takes one longitude for every item, the output grid's centre."""
    when = dt.datetime(2024, 6, 1, 23, 30)
    items = [
        make_item(tmp_path, f"sd-{k}", "EPSG:32633", Affine(30, 0, x0, 0, -30, 5_000_000.0),
                  (100, 100), when + dt.timedelta(seconds=k), k)
        for k, x0 in enumerate((494_000.0, 503_000.0))
    ]
    expected = odc(items, bands=["red"], groupby="solar_day")
    got = ours(items, bands=["red"], groupby="solar_day").to_dataset()
    assert len(expected.time) == 1
    assert_same(expected, got)


# -- item 12: unknown keywords ---------------------------------------------------------------------
def test_load_unknown_keyword_is_a_type_error_at_call_time(landsat_like):
    from georeader.errors import UnknownOptionError

    with pytest.raises(UnknownOptionError, match="'anchr'.*anchor"):
        ours(landsat_like, bands=["red"], anchr="center")
    s3_items = [{**it, "assets": {k: {**a, "href": "s3://bucket/" + Path(a["href"]).name}
                                  for k, a in it["assets"].items()}} for it in landsat_like]
    with pytest.raises(UnknownOptionError, match="'regoin'.*region"):
        ours(s3_items, bands=["red"], regoin="us-west-2", skip_signature=True)
    ours(s3_items, bands=["red"], region="us-west-2", skip_signature=True)  # no request made


def test_load_geoparquet_grid_and_keywords(landsat_like, two_zones, tmp_path):
    """A stac-geoparquet load picks the grid the items would (odc-stac's, from item counts),
    checks its keywords at call time too, and gives the same with_properties variables."""
    sga = pytest.importorskip("stac_geoparquet.arrow")
    from georeader.errors import UnknownOptionError

    for k, items in enumerate((landsat_like, two_zones)):
        path = tmp_path / f"items-{k}.parquet"
        sga.to_parquet(sga.parse_stac_items_to_arrow(items).read_all(), str(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MixedCrsWarning)
            warnings.simplefilter("ignore", OutsideItemsWarning)
            for kw in ({}, {"bbox": (16.85, 40.61, 16.886, 40.631)}, {"groupby": "solar_day"}):
                got = ours(str(path), bands=["red"], **kw)
                expected = ours(items, bands=["red"], **kw)
                assert got.geobox == expected.geobox
                assert got.keys == expected.keys
        with pytest.raises(UnknownOptionError, match="'anchr'"):
            ours(str(path), bands=["red"], anchr="edge")
        kw = {"groupby": "solar_day", "with_properties": ["eo:cloud_cover", "nope"]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MixedCrsWarning)
            got = ours(str(path), bands=["red"], **kw).to_dataset()
            expected = ours(items, bands=["red"], **kw).to_dataset()
        for name in ("eo_cloud_cover", "nope"):
            np.testing.assert_array_equal(got[name].values, expected[name].values)


def test_grid_union_measures_only_the_edge_footprints_and_equals_odc_geos():
    """The union of the items' footprints is odc-geo's (its 100-point footprints of every
    item) while only the footprints near the union's edges are measured that way."""
    from odc.geo.geom import BoundingBox, bbox_union

    from daskcog.mosaics.crs import crs_text
    from daskcog.mosaics.scenes import Scene
    from daskcog.stac import output_grid

    rng = np.random.default_rng(7)
    target = crs_text("EPSG:32633")
    grids = []
    for k in range(300):
        crs = "EPSG:32634" if k % 3 else "EPSG:32633"
        x0 = (230_000.0 if k % 3 else 720_000.0) + float(rng.integers(0, 2000)) * 20
        y0 = 4_900_000.0 + float(rng.integers(0, 2000)) * 20
        grids.append(Scene(f"s{k}", crs_text(crs), (20.0, 0.0, x0, 0.0, -20.0, y0), 500, 400,
                           1, "uint16"))
    output_grid._footprint.cache_clear()
    got = output_grid._item_boxes(grids, target)
    measured = output_grid._footprint.cache_info().misses
    assert measured < 60  # of 200 foreign footprints
    full = bbox_union(BoundingBox(*output_grid._footprint(g.crs, g.transform, g.width, g.height,
                                                          target)) for g in grids)
    assert tuple(bbox_union(BoundingBox(*b) for b in got)) == tuple(full)


@pytest.mark.parametrize("crs, resolution", [("EPSG:3857", 25), ("EPSG:4326", 0.0003),
                                             ("EPSG:32634", 20)])
def test_grid_foreign_output_crs_covers_the_items_as_odc_stac(landsat_like, two_zones, crs,
                                                              resolution):
    """Every footprint in another CRS: the union (odc-geo's footprints where they reach
    its edges) and so the grid and coordinates are odc-stac's."""
    for items in (landsat_like, two_zones):
        kw = {"bands": ["red"], "crs": crs, "resolution": resolution}
        expected = odc(items, **kw)
        got = ours(items, **kw).to_dataset()
        assert_same(expected, got, pixels=False)  # warped: nearest ties may differ
        same = got["red"].values == expected["red"].values
        assert same.mean() > 0.99
