"""daskcog.stats.band_stats against numpy on the factory's reference arrays."""

from __future__ import annotations

import json
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
from affine import Affine

import daskcog
from daskcog.reading.geoarray import GeoArray
from daskcog.stats import BandStats, band_stats, band_stats_many
from tests.cogfactory import TiffSpec, cached_tiff, expected_pixels
from tests.conftest import REAL_DIR, real_expected, real_files

pytestmark = pytest.mark.timeout(120)

SPECS = {
    "u16-nodata-2band": TiffSpec(
        dtype="uint16", width=700, height=530, count=2, nodata=0, blockxsize=128, blockysize=128
    ),
    "f32-nan": TiffSpec(dtype="float32", width=300, height=217, nodata=float("nan")),
    "i16-band-nodata": TiffSpec(
        dtype="int16",
        width=260,
        height=190,
        count=3,
        interleave="band",
        nodata=-9999,
        blockxsize=64,
        blockysize=64,
    ),
    "u8-mask": TiffSpec(
        dtype="uint8", count=3, mask=True, width=230, height=167, blockxsize=32, blockysize=32
    ),
    "f64-plain": TiffSpec(dtype="float64", width=200, height=150),
    "i32-nodata": TiffSpec(dtype="int32", width=200, height=150, nodata=-3_000_001),
}


def reference_valid(spec: TiffSpec, ignore_fill: bool = True) -> np.ndarray:
    """Which reference pixels band_stats must count, per its documented rule."""
    pixels = expected_pixels(spec)
    data = pixels.data
    valid = np.ones(data.shape, dtype=bool)
    if spec.is_float:
        valid &= ~np.isnan(data)
    if spec.nodata is not None and not (isinstance(spec.nodata, float) and np.isnan(spec.nodata)):
        valid &= data != spec.nodata
    if pixels.mask is not None:
        valid &= (pixels.mask != 0)[np.newaxis]
    fill = spec.nodata if spec.nodata is not None else 0
    masked = spec.nodata is None and pixels.mask is not None  # read with its validity
    if ignore_fill and not masked and not (isinstance(fill, float) and np.isnan(fill)):
        valid &= data != fill
    return valid


def assert_matches_numpy(stats: BandStats, values: np.ndarray, bins: int, total: int) -> None:
    assert stats.count == values.size
    assert stats.total == total
    if values.size == 0:
        assert stats.min is stats.max is stats.mean is stats.std is None
        return
    assert stats.min == values.min() and stats.max == values.max()
    assert type(stats.min) is (float if values.dtype.kind == "f" else int)
    as_float = values.astype(np.float64)
    assert stats.mean == pytest.approx(as_float.mean(), rel=1e-12, abs=1e-9)
    assert stats.std == pytest.approx(as_float.std(), rel=1e-9, abs=1e-9)
    # edges in float64 whatever the dtype (numpy would use float32 edges for float32 data)
    value_range = (np.float64(values.min()), np.float64(values.max()))
    counts, edges = np.histogram(values, bins=bins, range=value_range)
    np.testing.assert_array_equal(stats.histogram, counts)
    np.testing.assert_allclose(stats.edges, edges, rtol=0, atol=0)
    assert sum(stats.histogram) == values.size


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("chunks", [64, -1], ids=["chunked", "one-chunk"])
def test_band_stats_equal_numpy(name: str, chunks: int, tiff_cache: Path) -> None:
    spec = SPECS[name]
    geoarray = daskcog.open(cached_tiff(spec, tiff_cache), chunks=chunks)
    bins = 37
    stats = band_stats(geoarray, bins=bins)
    data = expected_pixels(spec).data
    valid = reference_valid(spec)
    assert [s.band for s in stats] == list(range(1, spec.count + 1))
    for b, s in enumerate(stats):
        assert_matches_numpy(s, data[b][valid[b]], bins, spec.width * spec.height)


def test_keep_fill_counts_zeros(tiff_cache: Path) -> None:
    """A file without nodata: with ignore_fill=False its zeros (the fill value) count."""
    spec = SPECS["u8-mask"]
    geoarray = daskcog.open(cached_tiff(spec, tiff_cache), chunks=64)
    kept = band_stats(geoarray, bins=8, ignore_fill=False)
    ignored = band_stats(geoarray, bins=8)
    masked_out = int((expected_pixels(spec).mask == 0).sum())
    assert kept[0].count == spec.width * spec.height  # masked pixels read as 0 and now count
    assert ignored[0].count < spec.width * spec.height - masked_out + 1
    assert kept[0].min == 0


def test_band_subset_and_overview(tiff_cache: Path) -> None:
    spec = TiffSpec(dtype="uint16", width=300, height=217, count=3, nodata=0, overviews=(2,))
    path = cached_tiff(spec, tiff_cache)
    stats = band_stats(daskcog.open(path, bands=[3, 1], chunks=64), bins=10)
    data, valid = expected_pixels(spec).data, reference_valid(spec)
    assert [s.band for s in stats] == [3, 1]
    assert_matches_numpy(stats[0], data[2][valid[2]], 10, 300 * 217)
    assert_matches_numpy(stats[1], data[0][valid[0]], 10, 300 * 217)
    overview = daskcog.open(path, overview_level=1)
    import rasterio

    with rasterio.open(path, overview_level=0) as src:
        level = src.read()
    ostats = band_stats(overview, bins=10)
    assert_matches_numpy(ostats[1], level[1][level[1] != 0], 10, overview.width * overview.height)


def test_all_invalid_band_and_empty_chunks() -> None:
    values = np.full((2, 90, 80), 7, dtype="int16")
    values[1, :30] = [[1, 2, 3, 4] * 20] * 30  # band 2 valid only in the first chunk row
    values[1, 30:] = -1
    values[0] = -1
    geoarray = GeoArray(
        da.from_array(values, chunks=(1, 30, 40)),
        transform=Affine(1, 0, 0, 0, -1, 0),
        crs=None,
        fill_value_default=-1,
        nodata=-1,
    )
    first, second = band_stats(geoarray, bins=4)
    assert (
        first.count == 0
        and first.min is None
        and first.histogram == (0, 0, 0, 0)
        and first.edges == ()
    )
    assert first.valid_fraction == 0.0
    assert_matches_numpy(second, values[1][values[1] != -1], 4, 90 * 80)
    assert json.loads(json.dumps(first.as_dict()))["mean"] is None


def test_constant_band_histogram() -> None:
    values = np.full((1, 50, 50), 42.5, dtype="float32")
    geoarray = GeoArray(
        da.from_array(values, chunks=(1, 25, 25)),
        transform=Affine(1, 0, 0, 0, -1, 0),
        crs=None,
        fill_value_default=float("nan"),
    )
    (stats,) = band_stats(geoarray, bins=5)
    assert stats.min == stats.max == 42.5 and stats.std == 0.0
    assert_matches_numpy(stats, values.ravel(), 5, 2500)


def test_std_is_exact_with_a_large_offset() -> None:
    """Chunk moments merged with Chan's rule: no cancellation from a sum of squares."""
    rng = np.random.default_rng(3)
    values = (1e9 + rng.normal(0, 1e-3, size=(1, 400, 300))).astype("float64")
    geoarray = GeoArray(
        da.from_array(values, chunks=(1, 37, 41)),
        transform=Affine(1, 0, 0, 0, -1, 0),
        crs=None,
        fill_value_default=float("nan"),
    )
    (stats,) = band_stats(geoarray, bins=16)
    assert stats.std == pytest.approx(values.std(), rel=1e-6)


def test_two_computes_for_many_arrays(tiff_cache: Path) -> None:
    arrays = [
        daskcog.open(cached_tiff(SPECS[n], tiff_cache), chunks=64)
        for n in ("u16-nodata-2band", "f32-nan")
    ]
    calls: list[int] = []

    def compute(collections):  # noqa: ANN001, ANN202
        calls.append(len(collections))
        return dask.compute(*collections, scheduler="threads")

    many = band_stats_many(arrays, bins=12, compute=compute)
    assert calls == [2, 2], "one compute for the moments of all arrays, one for the histograms"
    assert many[0] == band_stats(arrays[0], bins=12)
    assert many[1] == band_stats(arrays[1], bins=12)


def test_bins_must_be_positive(tiff_cache: Path) -> None:
    with pytest.raises(ValueError, match="bins"):
        band_stats(daskcog.open(cached_tiff(SPECS["f64-plain"], tiff_cache)), bins=0)


@pytest.mark.parametrize(
    "name",
    [
        "landsat7_rgb_lzw_tiled.tif",
        "landsat7_rgb_uncompressed_striped.tif",
        "riotiler_cog_int16_nodata.tif",
    ],
)
def test_real_files_match_rasterio_reference(name: str) -> None:
    """Per-band min / max / mean excluding nodata, as recorded with rasterio."""
    path = REAL_DIR / name
    expected = real_expected().get(name, {}).get("band_stats_excl_nodata")
    if not path.is_file() or expected is None:
        pytest.skip(f"{path} or its reference statistics are not available")
    stats = band_stats(daskcog.open(path, chunks=512), bins=16)
    for s, ref in zip(stats, expected, strict=True):
        assert s.min == ref["min"] and s.max == ref["max"]
        assert s.mean == pytest.approx(ref["mean"], rel=1e-12)


def test_zeros_of_a_file_without_nodata_or_mask_are_data(tmp_path: Path) -> None:
    """GDAL's statistics count every pixel of a file with neither nodata nor a mask, 0
    included; before, the fill value (0) was left out by default, and a HiRISE image lost 18 %
    of its pixels from its statistics. A file with a mask still leaves its fill out
    (test_keep_fill_counts_zeros)."""
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path / "plain.tif"
    values = np.arange(64 * 64, dtype=np.uint16).reshape(1, 64, 64) % 7  # 0 in 1/7 of pixels
    with rasterio.open(
        path, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint16",
        crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10), tiled=True,
        blockxsize=32, blockysize=32,
    ) as dst:
        dst.write(values)
    (stats,) = band_stats(daskcog.open(path, chunks=32), bins=7)
    assert stats.count == 64 * 64 and stats.min == 0
    assert stats.mean == pytest.approx(float(values.mean()), rel=1e-12)
    (forced,) = band_stats(daskcog.open(path, chunks=32), bins=7, ignore_fill=True)
    assert forced.count == int((values != 0).sum())


@pytest.mark.parametrize("path", real_files(), ids=lambda p: p.name)
def test_real_files_count_what_rasterio_counts(path: Path) -> None:
    """On every shared real-world file: the valid count of each band is what rasterio's
    masked read leaves valid (nodata, mask, alpha), and min / max are its own
    where the layout reads exactly (YCbCr JPEG decodes within a tolerance: tests/georeader).

    Files with a mask or alpha band are read with GDAL's mask (`valid_reads`): a visible
    pixel equal to the fill value counts, and so do the alpha band's own zeros (before, the
    fill value was left out: hro_rgba lost 358 of 78,812 visible pixels and an alpha band
    could count none)."""
    import rasterio

    try:
        geoarray = daskcog.open(path, chunks=512)
    except Exception as exc:  # noqa: BLE001 - files daskcog refuses are tested elsewhere
        pytest.skip(f"daskcog does not open it: {type(exc).__name__}")
    with rasterio.open(path) as src:
        if src.width * src.height * src.count > 100_000_000:  # linz_sparse: 1.6 G samples
            pytest.skip("too large to read whole with rasterio in a test (GBs of memory)")
        masked = src.read(masked=True)
        ycbcr = src.tags(ns="IMAGE_STRUCTURE").get("COMPRESSION") == "YCbCr JPEG"
    stats = band_stats(geoarray, bins=4)
    for b, s in enumerate(stats):
        band = masked[b]
        valid = np.ma.getmaskarray(band)
        values = np.asarray(band.data)[~valid]
        if values.dtype.kind == "f":
            values = values[~np.isnan(values)]
        assert s.count == values.size, (path.name, b + 1)
        if values.size and not ycbcr:
            assert (s.min, s.max) == (values.min(), values.max()), (path.name, b + 1)
