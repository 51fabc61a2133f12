"""Many reads at once (asyncio.gather) return exactly what one-by-one reads and rasterio return.

200 seeded random windows (random level, inside, crossing or past the edges, some
with negative offsets) of a generated multi-tile COG with an internal mask and
overviews, and of a real file when ../shared/testdata/real is present. All of them
run on one reader (one header, shared by the overview readers) at the same time.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import numpy as np
import pytest
from rasterio.windows import Window

from georeader import AsyncGeoTIFFReader, RasterioReader
from tests.cogfactory import TiffSpec, cached_tiff
from tests.conftest import REAL_DIR, REAL_MISSING
from tests.georeader.helpers import run, same_pixels

pytestmark = pytest.mark.filterwarnings(
    r"ignore:Use `@` matmul instead of `\*` mul operator:PendingDeprecationWarning"  # affine 3
)

N_WINDOWS = 200
COG_WITH_MASK = TiffSpec(
    dtype="uint16",
    width=1100,
    height=900,
    count=3,
    blockxsize=128,
    blockysize=64,
    compress="deflate",
    predictor=2,
    mask=True,
    overviews=(2, 4, 8),
)
REAL_FILE = "riotiler_cog_uint16_deflate.tif"  # 2658 x 2667, 256 tiles, 4 overviews


def _random_windows(reader: AsyncGeoTIFFReader, seed: int) -> list[tuple[int, Window]]:
    rng = random.Random(seed)
    cases = []
    for _ in range(N_WINDOWS):
        level = rng.randint(0, reader.overview_count)
        ovr = reader.overview(level)
        w = rng.randint(1, min(400, ovr.width + 20))
        h = rng.randint(1, min(400, ovr.height + 20))
        col = rng.randint(-w // 2, ovr.width - w // 2)
        row = rng.randint(-h // 2, ovr.height - h // 2)
        cases.append((level, Window(col, row, w, h)))
    return cases


async def _gather_vs_sequential(path: Path, seed: int) -> int:
    reader = await AsyncGeoTIFFReader.open(path)
    cases = _random_windows(reader, seed)
    levels = {level: reader.overview(level) for level in range(reader.overview_count + 1)}

    concurrent = await asyncio.gather(*(levels[lvl].read_window(w) for lvl, w in cases))
    one_by_one = [await levels[lvl].read_window(w) for lvl, w in cases]

    refs = {lvl: RasterioReader(path, overview_level=lvl) for lvl in levels}
    try:
        for (lvl, w), a, b in zip(cases, concurrent, one_by_one, strict=True):
            label = f"{path.name} level {lvl} {w}"
            assert a.transform == b.transform, label
            assert same_pixels(a.values, b.values), f"{label}: gather differs from one-by-one"
            assert same_pixels(a.values, refs[lvl].read_window(w).values), (
                f"{label}: differs from rasterio"
            )
    finally:
        for ref in refs.values():
            ref.close()
    # the windows really were a mix: several levels, partly outside, masked pixels
    assert len({lvl for lvl, _ in cases}) == len(levels)
    assert any(w.col_off < 0 or w.row_off < 0 for _, w in cases)
    return len(cases)


def test_gather_generated_cog_with_mask(tiff_cache: Path) -> None:
    path = cached_tiff(COG_WITH_MASK, tiff_cache)
    assert run(_gather_vs_sequential(path, seed=20261125)) == N_WINDOWS


def test_gather_real_file() -> None:
    path = REAL_DIR / REAL_FILE
    if not path.is_file():
        pytest.skip(REAL_MISSING)
    assert run(_gather_vs_sequential(path, seed=42)) == N_WINDOWS


def test_gather_mixed_files_and_band_subsets(tiff_cache: Path) -> None:
    """Readers of different files, levels and band subsets, all in flight together."""
    specs = [
        COG_WITH_MASK,
        TiffSpec(
            dtype="float32",
            count=2,
            interleave="band",
            predictor=3,
            compress="zstd",
            nodata=float("nan"),
            overviews=(2,),
        ),
        TiffSpec(dtype="uint8", count=3, compress="jpeg", photometric="RGB", overviews=(2,)),
        TiffSpec(
            dtype="int16", tiled=False, blockysize=16, layout="gtiff", nodata=-9999
        ),  # GDAL route
    ]
    paths = [cached_tiff(spec, tiff_cache) for spec in specs]

    async def check() -> None:
        readers = [await AsyncGeoTIFFReader.open(p) for p in paths]
        rng = np.random.default_rng(7)
        cases = []
        for _ in range(120):
            i = int(rng.integers(len(readers)))
            base = readers[i]
            level = int(rng.integers(base.overview_count + 1))
            bands = sorted({int(b) for b in rng.integers(1, base.count + 1, size=2)})
            sub = base.overview(level).select_bands(bands)
            w = Window(
                int(rng.integers(-20, sub.width)),
                int(rng.integers(-20, sub.height)),
                int(rng.integers(1, 150)),
                int(rng.integers(1, 150)),
            )
            cases.append((i, level, bands, sub, w))
        results = await asyncio.gather(*(sub.read_window(w) for *_, sub, w in cases))
        for (i, level, bands, _, w), got in zip(cases, results, strict=True):
            with RasterioReader(paths[i], overview_level=level, bands=bands) as ref:
                want = ref.read_window(w).values
            assert same_pixels(got.values, want), f"{paths[i].name} level {level} bands {bands} {w}"

    run(check())
