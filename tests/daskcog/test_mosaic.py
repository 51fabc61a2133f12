"""daskcog.mosaic against rasterio: merge for aligned scenes, GDAL warps for the others.

Scenes: windows cut from a real COG (../shared/testdata/real, skipped when absent) with
nodata holes, two of them reprojected to EPSG:4326 and to the neighbouring UTM zone
and written as COGs with overviews; and generated scenes (tests.cogfactory) with
nodata (int16 sentinel, float32 NaN, uint8 x 3 bands).

Exactness (measured, asserted below):
* aligned, same CRS: equal to `rasterio.merge.merge` for first/last/min/max;
* reprojected with `warp_tolerance=0`: equal to rasterio's warp of each whole scene
  onto the target grid (WarpedVRT with an exact transformer and the same pinned
  XSCALE/YSCALE) for nearest, bilinear and cubic; then each method in numpy;
* reprojected with GDAL's default approximate transformer (0.125 px): against
  `rasterio.warp.reproject` of each whole scene, nearest differs in ~0.2 % of the
  pixels (a source pixel's neighbour picked), bilinear in ~10 % with a mean absolute
  difference below 2 DN (data ~1,000-5,000): asserted as < 1 % / < 20 % / < 2 DN.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.merge import merge
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform, reproject
from rasterio.windows import Window

import daskcog
from daskcog.mosaics import chunk_task as mosaic_tasks
from daskcog.mosaics.grid import place
from daskcog.mosaics.methods import FirstMethod, MosaicMethodError
from daskcog.mosaics.scenes import Scene, fetch_scenes
from tests.cogfactory import TiffSpec, cached_tiff
from tests.conftest import REAL_DIR, REAL_MISSING

REAL_SOURCE = REAL_DIR / "riotiler_cog_uint16_deflate.tif"  # 2658 x 2667 uint16, EPSG:32621, 100 m
CUTS = [
    Window(100, 200, 700, 600),
    Window(500, 500, 800, 500),
    Window(300, 650, 500, 700),
    Window(900, 100, 400, 900),
]
RES = None  # the real file's resolution, set when the scenes are built


# -- scene builders (plain functions, cached on disk: shared with test_stack.py) -----------
def _write_cog(path: Path, data: np.ndarray, *, crs, transform, nodata, overviews=()) -> Path:
    if path.exists():
        return path
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    tmp = path.with_suffix(".tmp.tif")
    with MemoryFile() as memfile:
        with memfile.open(**profile) as dst:
            dst.write(data)
            if overviews:
                dst.build_overviews(list(overviews), Resampling.nearest)
        with memfile.open() as src:
            rasterio.shutil.copy(
                src,
                tmp,
                driver="GTiff",
                tiled=True,
                blockxsize=256,
                blockysize=256,
                compress="deflate",
                copy_src_overviews=bool(overviews),
            )
    tmp.rename(path)
    return path


def _with_hole(data: np.ndarray, seed: int) -> np.ndarray:
    """A nodata (0) disc and a nodata band of rows, different per scene."""
    _, h, w = data.shape
    rng = np.random.default_rng(seed)
    cy, cx = rng.integers(h // 4, 3 * h // 4), rng.integers(w // 4, 3 * w // 4)
    yy, xx = np.mgrid[:h, :w]
    out = data.copy()
    out[:, (yy - cy) ** 2 + (xx - cx) ** 2 < (min(h, w) // 6) ** 2] = 0
    r0 = rng.integers(0, h - 20)
    out[:, r0 : r0 + 12, : w // 2] = 0
    return out


def real_scene_paths(folder: Path) -> list[Path]:
    """Four overlapping aligned windows of the real COG, with nodata (0) holes."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with rasterio.open(REAL_SOURCE) as src:
        for i, window in enumerate(CUTS):
            path = folder / f"real_cut{i}.tif"
            if not path.exists():
                data = _with_hole(src.read(window=window), i)
                _write_cog(
                    path, data, crs=src.crs, transform=src.window_transform(window), nodata=0
                )
            paths.append(path)
    return paths


def reprojected_scene(source: Path, path: Path, crs: str) -> Path:
    """`source` warped (nearest) to another CRS, written as a COG with overviews."""
    if path.exists():
        return path
    with rasterio.open(source) as src:
        transform, width, height = calculate_default_transform(
            src.crs, crs, src.width, src.height, *src.bounds
        )
        data = np.zeros((src.count, height, width), dtype=src.dtypes[0])
        reproject(
            rasterio.band(src, list(range(1, src.count + 1))),
            data,
            dst_transform=transform,
            dst_crs=crs,
            src_nodata=0,
            dst_nodata=0,
            resampling=Resampling.nearest,
        )
    return _write_cog(path, data, crs=crs, transform=transform, nodata=0, overviews=(2, 4))


def mixed_scene_paths(folder: Path) -> list[Path]:
    """An aligned UTM scene, one in EPSG:4326 and one in the next UTM zone (32620)."""
    cuts = real_scene_paths(folder)
    return [
        cuts[0],
        reprojected_scene(cuts[1], folder / "real_4326.tif", "EPSG:4326"),
        reprojected_scene(cuts[2], folder / "real_32620.tif", "EPSG:32620"),
    ]


GENERATED = {
    "i16": {"dtype": "int16", "nodata": -32768},
    "f32nan": {"dtype": "float32", "nodata": float("nan")},
    "u8x3": {"dtype": "uint8", "nodata": 0, "count": 3},
}
OFFSETS = [(0, 0), (150, 70), (80, 150), (-50, 30)]  # (cols, rows) of 10 m pixels


def generated_scene_paths(folder: Path, kind: str, overviews: tuple[int, ...] = ()) -> list[Path]:
    """Four overlapping aligned cogfactory scenes (different content, same 10 m grid)."""
    paths = []
    for dx, dy in OFFSETS:
        spec = TiffSpec(
            width=300,
            height=217,
            blockxsize=64,
            blockysize=64,
            overviews=overviews,
            origin_x=399960.0 + 10 * dx,
            origin_y=5500020.0 - 10 * dy,
            **GENERATED[kind],
        )
        paths.append(cached_tiff(spec, folder))
    return paths


@pytest.fixture(scope="session")
def scene_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "mosaic-scenes"


@pytest.fixture(scope="session")
def real_scenes(scene_dir: Path) -> list[Path]:
    if not REAL_SOURCE.is_file():
        pytest.skip(REAL_MISSING)
    return real_scene_paths(scene_dir)


@pytest.fixture(scope="session")
def mixed_scenes(scene_dir: Path, real_scenes: list[Path]) -> list[Path]:
    return mixed_scene_paths(scene_dir)


# -- references ------------------------------------------------------------------------
def combine(layers: np.ndarray, valid: np.ndarray, method: str, fill: float) -> np.ndarray:
    """The mosaic methods in plain numpy over a (scene, band, y, x) stack."""
    if method in ("first", "last"):
        order = range(len(layers)) if method == "first" else range(len(layers) - 1, -1, -1)
        out = np.full(layers.shape[1:], fill, dtype=layers.dtype)
        done = np.zeros(layers.shape[1:], dtype=bool)
        for i in order:
            take = valid[i] & ~done
            out[take] = layers[i][take]
            done |= take
        return out
    as_float = np.where(valid, layers.astype(np.float64), np.nan)
    seen = valid.any(axis=0)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        value = {
            "min": lambda: np.nanmin(as_float, axis=0),
            "max": lambda: np.nanmax(as_float, axis=0),
            "mean": lambda: np.nanmean(as_float, axis=0),
            "median": lambda: np.nanmedian(as_float, axis=0),
            "count": lambda: valid.sum(axis=0).astype(np.float64),
        }[method]()
    if method == "count":
        return value.astype(np.uint16)
    dtype = layers.dtype if method in ("min", "max") else np.result_type(layers.dtype, np.float32)
    return np.where(seen, value, fill).astype(dtype)


def warped_layers(
    paths: list[Path], grid, resampling: str, *, exact: bool, scales: np.ndarray | None = None
) -> np.ndarray:
    """Each whole scene warped by rasterio onto the grid of `grid` (a GeoArray)."""
    layers = []
    for i, path in enumerate(paths):
        extras = {}
        if scales is not None and resampling != "nearest":
            extras = {"XSCALE": repr(float(scales[i][0])), "YSCALE": repr(float(scales[i][1]))}
        with rasterio.open(path) as src:
            out = np.zeros(grid.shape, dtype=src.dtypes[0])
            if exact:
                with WarpedVRT(
                    src,
                    crs=grid.crs.to_wkt(),
                    transform=grid.transform,
                    width=grid.width,
                    height=grid.height,
                    resampling=Resampling[resampling],
                    tolerance=1e-9,
                    src_nodata=0,
                    nodata=0,
                    **extras,
                ) as vrt:
                    out = vrt.read()
            else:
                reproject(
                    rasterio.band(src, list(range(1, src.count + 1))),
                    out,
                    dst_transform=grid.transform,
                    dst_crs=grid.crs.to_wkt(),
                    src_nodata=0,
                    dst_nodata=0,
                    resampling=Resampling[resampling],
                    **extras,
                )
        layers.append(out)
    return np.stack(layers)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.shape == b.shape
        and a.dtype == b.dtype
        and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    )


# -- aligned scenes: rasterio.merge ---------------------------------------------------------
@pytest.mark.parametrize("method", ["first", "last", "min", "max"])
def test_aligned_real_scenes_equal_rasterio_merge(real_scenes: list[Path], method: str) -> None:
    mos = daskcog.mosaic(real_scenes, method=method, chunks=256)
    got = mos.compute().values
    expected, transform = merge(
        [str(p) for p in real_scenes], bounds=mos.bounds, res=mos.res, nodata=0, method=method
    )
    assert transform == mos.transform
    assert same(got, expected)
    assert mos.data.npartitions > 4  # several chunks, some of them touched by several scenes


def test_default_grid_is_union_at_scene_resolution(real_scenes: list[Path]) -> None:
    mos = daskcog.mosaic(real_scenes)
    expected, transform = merge([str(p) for p in real_scenes], nodata=0)
    assert mos.transform == transform
    assert mos.shape == expected.shape
    assert mos.crs.to_epsg() == 32621
    assert mos.nodata == 0 and mos.fill_value_default == 0


@pytest.mark.parametrize("kind", sorted(GENERATED))
@pytest.mark.parametrize("method", ["first", "last", "min", "max"])
def test_aligned_generated_scenes_equal_rasterio_merge(
    tiff_cache: Path, kind: str, method: str
) -> None:
    paths = generated_scene_paths(tiff_cache, kind)
    nodata = GENERATED[kind]["nodata"]
    mos = daskcog.mosaic(paths, method=method, chunks=(1, 96, 128))
    got = mos.compute().values
    expected, transform = merge(
        [str(p) for p in paths], bounds=mos.bounds, res=mos.res, nodata=nodata, method=method
    )
    assert transform == mos.transform
    assert got.shape[0] == GENERATED[kind].get("count", 1)
    assert same(got, expected)


def test_aligned_overview_read_when_resolution_is_coarser(tiff_cache: Path) -> None:
    """At 4x the resolution the overview (factor 4) is read, then warped: equal to GDAL's
    warp of that overview."""
    paths = generated_scene_paths(tiff_cache, "i16", overviews=(2, 4))[:2]
    mos = daskcog.mosaic(
        paths, resolution=40, method="first", warp_tolerance=0, chunks=64, nodata=-32768
    )
    layers = []
    for path in paths:
        with (
            rasterio.open(path, overview_level=1) as src,
            WarpedVRT(
                src,
                crs=mos.crs.to_wkt(),
                transform=mos.transform,
                width=mos.width,
                height=mos.height,
                tolerance=1e-9,
                src_nodata=-32768,
                nodata=-32768,
            ) as vrt,
        ):
            layers.append(vrt.read())
    layers = np.stack(layers)
    expected = combine(layers, layers != -32768, "first", -32768)
    assert same(mos.compute().values, expected)


# -- reprojected scenes -------------------------------------------------------------------
@pytest.mark.parametrize("resampling", ["nearest", "bilinear", "cubic"])
def test_reprojected_exact_transformer_equals_whole_scene_warps(
    mixed_scenes: list[Path], resampling: str
) -> None:
    res = place(fetch_scenes(mixed_scenes)).grid.res
    mos = daskcog.mosaic(
        mixed_scenes, resolution=res, resampling=resampling, warp_tolerance=0, chunks=256
    )
    scales = place(fetch_scenes(mixed_scenes), resolution=res).warp_scales()
    layers = warped_layers(mixed_scenes, mos, resampling, exact=True, scales=scales)
    expected = combine(layers, layers != 0, "first", 0)
    got = mos.compute().values
    assert (expected != 0).mean() > 0.5
    assert same(got, expected)


@pytest.mark.parametrize(
    ("resampling", "max_mismatch", "max_mean_abs"), [("nearest", 0.01, 2.0), ("bilinear", 0.2, 2.0)]
)
def test_reprojected_default_transformer_close_to_rasterio_reproject(
    mixed_scenes: list[Path], resampling: str, max_mismatch: float, max_mean_abs: float
) -> None:
    mos = daskcog.mosaic(
        mixed_scenes, resolution=100.01126757344893, resampling=resampling, chunks=256
    )
    layers = warped_layers(mixed_scenes, mos, resampling, exact=False)
    expected = combine(layers, layers != 0, "first", 0)
    got = mos.compute().values
    both = (got != 0) & (expected != 0)
    diff = np.abs(got.astype(np.int64) - expected.astype(np.int64))[both]
    mismatch = float((diff > 0).mean())
    print(
        f"\n{resampling}: {mismatch:.3%} of pixels differ, mean |diff| {diff.mean():.3f} DN, "
        f"validity differs at {int(((got == 0) != (expected == 0)).sum())} px"
    )
    assert mismatch < max_mismatch
    assert diff.mean() < max_mean_abs
    assert ((got == 0) != (expected == 0)).mean() < 0.001


@pytest.mark.parametrize("method", ["first", "last", "min", "max", "mean", "median", "count"])
def test_methods_on_reprojected_stack_equal_numpy(mixed_scenes: list[Path], method: str) -> None:
    res = place(fetch_scenes(mixed_scenes)).grid.res
    mos = daskcog.mosaic(mixed_scenes, resolution=res, method=method, warp_tolerance=0, chunks=300)
    layers = warped_layers(mixed_scenes, mos, "nearest", exact=True)
    expected = combine(layers, layers != 0, method, 0)
    got = mos.compute().values
    assert got.dtype == expected.dtype
    if method == "mean":
        np.testing.assert_allclose(got, expected, rtol=1e-6)  # float32 of a float64 mean
    else:
        assert same(got, expected)
    if method == "count":
        assert got.dtype == np.uint16 and got.max() == 3 and mos.nodata is None


# -- behaviour ---------------------------------------------------------------------------
def test_first_stops_reading_once_chunk_is_filled(
    real_scenes: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four copies of one scene (same footprint): first reads one scene per chunk where that
    fills it, last reads only the last one there, max reads all four."""
    scenes = fetch_scenes([real_scenes[0]] * 4)
    reads: list[int] = []
    original = mosaic_tasks.read_scene

    async def counting(spec, index, bands, window, **kwargs):
        reads.append(index)
        return await original(spec, index, bands, window, **kwargs)

    monkeypatch.setattr(mosaic_tasks, "read_scene", counting)
    mos = daskcog.mosaic(scenes, method="first", batch_size=1, chunks=100)
    full = mos.compute(scheduler="sync").values
    chunks = mos.data.npartitions
    filled_by_one = _chunks_without_nodata(full, mos.data.chunks)
    assert 0 < filled_by_one < chunks
    assert reads.count(0) == chunks
    # a chunk without holes is done after one scene; one with a hole reads every copy
    assert len(reads) == filled_by_one + 4 * (chunks - filled_by_one)
    reads.clear()
    daskcog.mosaic(scenes, method="last", batch_size=1, chunks=100).compute(scheduler="sync")
    assert reads.count(3) == chunks and len(reads) == filled_by_one + 4 * (chunks - filled_by_one)
    # default batches (4 at once) end after a scene whose footprint covers the chunk: same reads
    reads.clear()
    daskcog.mosaic(scenes, method="first", chunks=100).compute(scheduler="sync")
    assert len(reads) == filled_by_one + 4 * (chunks - filled_by_one)
    # methods that cannot finish early read every scene
    reads.clear()
    daskcog.mosaic(scenes, method="max", chunks=100).compute(scheduler="sync")
    assert len(reads) == 4 * chunks


def _chunks_without_nodata(values: np.ndarray, chunks: tuple[tuple[int, ...], ...]) -> int:
    n = 0
    r = 0
    for h in chunks[1]:
        c = 0
        for w in chunks[2]:
            n += bool((values[:, r : r + h, c : c + w] != 0).all())
            c += w
        r += h
    return n


def test_bounds_beyond_scenes_fill_with_nodata(real_scenes: list[Path]) -> None:
    with rasterio.open(real_scenes[0]) as src:
        left, bottom, right, top = src.bounds
        res = src.res[0]
    bounds = (left - 50 * res, bottom - 20 * res, right + 30 * res, top + 10 * res)
    mos = daskcog.mosaic(real_scenes[:1], bounds=bounds, nodata=7, chunks=128)
    assert mos.transform.c == bounds[0] and mos.transform.f == bounds[3]
    assert mos.shape[1:] == (src.height + 30, src.width + 80)
    got = mos.compute().values
    assert (got[:, :10] == 7).all() and (got[:, :, :50] == 7).all()
    with rasterio.open(real_scenes[0]) as src:
        inner = src.read()
    inner = np.where(inner == 0, 7, inner)
    assert same(got[:, 10 : 10 + src.height, 50 : 50 + src.width], inner)


def test_like_and_readers_as_sources(real_scenes: list[Path]) -> None:
    from daskcog.runtime.io_loop import run_sync
    from georeader import AsyncGeoTIFFReader

    base = daskcog.open(real_scenes[2])
    by_path = daskcog.mosaic(real_scenes, like=base, chunks=256)
    assert by_path.transform == base.transform and by_path.shape == base.shape
    readers = [run_sync(AsyncGeoTIFFReader.open(p)) for p in real_scenes]
    by_reader = daskcog.mosaic(readers, like=by_path, chunks=256)
    assert same(by_reader.compute().values, by_path.compute().values)
    # a lazy slice keeps the grid right
    part = by_path[:, 100:200, 50:150]
    assert part.transform == by_path.transform @ Affine.translation(50, 100)
    assert same(part.compute().values, by_path.compute().values[:, 100:200, 50:150])


def test_custom_method_class_and_errors(real_scenes: list[Path]) -> None:
    class Fill1(FirstMethod):  # a subclass defined here: works on the local schedulers
        name = "first-again"

    assert same(
        daskcog.mosaic(real_scenes, method=Fill1, chunks=256).compute().values,
        daskcog.mosaic(real_scenes, chunks=256).compute().values,
    )
    with pytest.raises(MosaicMethodError, match="unknown mosaic method"):
        daskcog.mosaic(real_scenes, method="mode")
    with pytest.raises(ValueError, match="unknown resampling"):
        daskcog.mosaic(real_scenes, resampling="bicubic")
    with pytest.raises(ValueError, match="outside the range of uint16"):
        daskcog.mosaic(real_scenes, nodata=-1)
    with pytest.raises(ValueError, match="fewer than 2 bands"):
        daskcog.mosaic(real_scenes, bands=[1, 2])
    with pytest.raises(TypeError, match="mosaic sources"):
        daskcog.mosaic([object()])


def test_to_xarray(real_scenes: list[Path]) -> None:
    pytest.importorskip("rioxarray")
    xr_array = daskcog.mosaic(real_scenes, chunks=256).to_xarray()
    assert xr_array.dims == ("band", "y", "x")
    assert xr_array.rio.crs.to_epsg() == 32621


# -- scale and distribution -------------------------------------------------------------------
def test_thousand_scene_graph_builds_without_io(capsys: pytest.CaptureFixture[str]) -> None:
    """1,000 precomputed footprints, no I/O: a 10 x 10 grid of Sentinel-2-like tiles
    (109.8 km, 100 km apart; the eastern column in the next UTM zone) x 10 dates.
    Builds in < 2 s with < 100k tasks; a chunk sees only the scenes it overlaps."""
    from pyproj import Transformer

    to_next_zone = Transformer.from_crs("EPSG:32633", "EPSG:32634", always_xy=True)
    scenes = []
    for date in range(10):
        for row in range(10):
            for col in range(10):
                x0, y0 = 300_000 + col * 100_000, 5_000_000 - row * 100_000
                crs = "EPSG:32633"
                if col == 9:  # about the same ground, in the next zone's coordinates
                    crs, (x0, y0) = "EPSG:32634", to_next_zone.transform(x0, y0)
                scenes.append(
                    Scene.from_footprint(
                        f"s3://bucket/{date:02d}/T{row}{col}.tif",
                        (x0, y0 - 109_800, x0 + 109_800, y0),
                        crs,
                        10,
                        dtype="uint16",
                        nodata=0,
                        region="us-west-2",
                    )
                )
    start = time.perf_counter()
    mos = daskcog.mosaic(scenes)
    elapsed = time.perf_counter() - start
    graph = mos.data.__dask_graph__()
    tasks = len(graph)
    with capsys.disabled():
        print(
            f"\n1,000-scene mosaic graph: {mos.shape[1]:,} x {mos.shape[2]:,} px, {tasks:,} tasks, "
            f"built in {elapsed:.3f} s"
        )
    assert elapsed < 2.0
    assert tasks < 100_000
    assert tasks == mos.data.npartitions + 1  # one task per chunk, plus the array-like
    spec = next(v for v in dict(graph).values() if isinstance(v, mosaic_tasks.MosaicBlocks)).spec
    counts = [
        len(spec.candidates(0, spec.grid.window_bounds(c, r, 2048, 2048)))
        for r in range(0, mos.height - 2048, 9 * 2048)
        for c in range(0, mos.width - 2048, 9 * 2048)
    ]
    assert min(counts) >= 10 and max(counts) <= 40  # 1 to 4 tiles x 10 dates, not 1,000


def test_distributed_two_processes(real_scenes: list[Path]) -> None:
    distributed = pytest.importorskip("distributed")
    expected = daskcog.mosaic(real_scenes, method="max", chunks=256).compute().values
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        mos = daskcog.mosaic(real_scenes, method="max", chunks=256)
        got = client.compute(mos.data).result()
        infos = client.run(daskcog.cache_info)
    assert same(got, expected)
    opens = {addr: info.opens for addr, info in infos.items()}
    assert len(opens) == 2
    assert all(n <= len(real_scenes) for n in opens.values()), opens
    assert sum(opens.values()) >= len(real_scenes)


@pytest.mark.parametrize(
    "name", ["first", "last", "min", "max", "mean", "median", "count", "custom"]
)
def test_feed_part_equals_feed_of_the_widened_scene(name: str) -> None:
    """A scene that reaches part of a chunk, fed with `feed_part`, leaves the method as
    `feed` of the scene widened to the chunk (fill and invalid around it) does; a subclass
    that overrides `feed` alone still gets its own `feed`."""
    from daskcog.mosaics.methods import MosaicMethod, get_method

    class EveryOther(FirstMethod):
        def feed(self, values: np.ndarray, valid: np.ndarray) -> None:
            super().feed(values, valid & (np.indices(valid.shape).sum(axis=0) % 2 == 0))

    cls: type[MosaicMethod] = EveryOther if name == "custom" else get_method(name)
    rng = np.random.default_rng(3)
    shape, fill = (2, 40, 50), 0
    scenes = []
    for rows, cols in ((slice(0, 40), slice(0, 50)), (slice(5, 23), slice(30, 50)),
                       (slice(17, 40), slice(0, 11)), (slice(1, 39), slice(2, 48))):
        part = (shape[0], rows.stop - rows.start, cols.stop - cols.start)
        scenes.append((rows, cols, rng.integers(1, 9, part).astype("uint16"),
                       rng.random(part) > 0.3))
    by_part, widened = cls(shape, np.dtype("uint16"), fill), cls(shape, np.dtype("uint16"), fill)
    for rows, cols, values, valid in scenes:
        by_part.feed_part(values, valid, rows, cols)
        whole, mask = np.full(shape, fill, "uint16"), np.zeros(shape, bool)
        whole[:, rows, cols], mask[:, rows, cols] = values, valid
        widened.feed(whole, mask)
        assert by_part.is_done == widened.is_done
    np.testing.assert_array_equal(by_part.result(), widened.result())
