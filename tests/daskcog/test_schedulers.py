"""daskcog.open computes the same arrays as RasterioReader on dask's threaded, sync and processes
schedulers."""

from __future__ import annotations

import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest

import daskcog
from georeader import RasterioReader
from georeader.errors import GeoreaderError
from tests.cogfactory import cached_tiff
from tests.daskcog.conftest import (
    GEN_SPECS,
    assert_equal_values,
    assert_same_grid,
    corrupt_tiles,
    real_path,
    reference,
)

SCHEDULERS = ("threads", "sync", "processes")

# ~6 diverse real files: (file, open() options)
REAL_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "mask-rgb": ("hro_rgb_mask_deflate_cog.tif", {}),
    "float64-nodata": ("riotiler_fullearth_float64_deflate.tif", {"chunks": 64}),
    "rgb-nodata-3band": ("landsat7_rgb_lzw_tiled.tif", {"chunks": (1, 256, 256)}),
    "uint16-overview2": ("riotiler_cog_uint16_deflate.tif", {"overview_level": 2, "chunks": 256}),
    "rgba-webp-alpha-overview1": (
        "naip_webp_rgba_bigtiff_cog.tif",
        {"overview_level": 1, "chunks": 256},
    ),
    "int16-2band-bands": ("riotiler_scale_offset_int16_2band.tif", {"bands": [2], "chunks": 64}),
}

GEN_CASES: dict[str, dict[str, Any]] = {
    "multi-tile": {"chunks": 64},
    "odd-size-nodata": {"chunks": (1, 80, 96)},
    "band-interleave-pred2": {"chunks": (1, 64, 128)},
    "mask": {"chunks": 32},
    "overviews-nan": {"overview_level": 1, "chunks": 32},
}


@pytest.fixture(scope="module")
def process_pool():
    """One spawned pool for the module: dask's processes scheduler otherwise spawns per compute."""
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def scheduler_kwargs(request):
    def make(scheduler: str) -> dict[str, Any]:
        if scheduler == "processes":
            return {"scheduler": "processes", "pool": request.getfixturevalue("process_pool")}
        return {"scheduler": scheduler}

    return make


# -- computed arrays equal RasterioReader's ------------------------------------------------------
@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("case", list(REAL_CASES))
def test_real_files_equal_rasterio(case, scheduler, scheduler_kwargs) -> None:
    name, options = REAL_CASES[case]
    path = real_path(name)
    g = daskcog.open(path, **options)
    ref = reference(path, options)
    assert_same_grid(g, ref)
    assert g.data.npartitions >= 1
    result = g.compute(**scheduler_kwargs(scheduler))
    expected = ref.load()
    assert_equal_values(result.values, expected.values)
    assert result.transform == g.transform
    assert result.crs == g.crs


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("case", list(GEN_CASES))
def test_generated_files_equal_rasterio(case, scheduler, scheduler_kwargs, gen_paths) -> None:
    options = GEN_CASES[case]
    path = gen_paths[case]
    g = daskcog.open(path, **options)
    ref = reference(path, options)
    assert_same_grid(g, ref)
    assert g.data.npartitions > 1
    assert_equal_values(g.compute(**scheduler_kwargs(scheduler)).values, ref.load().values)


@pytest.fixture(scope="module")
def int_case(tiff_cache):
    path = cached_tiff(GEN_SPECS["odd-size-nodata"], tiff_cache)
    return daskcog.open(path, chunks=(1, 80, 48)), RasterioReader(path).load().values


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_fused_graphs_on_other_schedulers(int_case, scheduler, scheduler_kwargs) -> None:
    """Graph optimisation fuses reads into sync subgraphs: chunk tasks must stay plain functions."""
    g, ref = int_case
    kw = scheduler_kwargs(scheduler)

    def tag(block: np.ndarray, block_id=None) -> np.ndarray:
        return block.astype("int64") + block_id[2]

    total, tagged, stacked = dask.compute(
        g.data.sum(),
        g.data.map_blocks(tag, dtype="int64").sum(),
        da.stack([g.data, g.data]).mean(),
        **kw,
    )
    assert total == ref.sum()
    col_index = np.repeat(np.arange(len(g.chunks[2])), g.chunks[2])
    assert tagged == ref.astype("int64").sum() + col_index.sum() * ref.shape[1]
    np.testing.assert_allclose(stacked, ref.mean(), rtol=1e-12)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_chunk_errors_reach_the_caller(tmp_path, gen_paths, scheduler, scheduler_kwargs) -> None:
    path = tmp_path / f"corrupt-{scheduler}.tif"
    shutil.copy(gen_paths["multi-tile"], path)
    g = daskcog.open(path, chunks=64)
    corrupt_tiles(path)
    with pytest.raises(GeoreaderError, match=f"corrupt-{scheduler}.tif"):
        g.compute(**scheduler_kwargs(scheduler))
