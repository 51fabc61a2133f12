"""Check corpus files against rasterio, one JSON line per file (run by test_corpus.py).

Run as `python -m tests.georeader.corpus_check FILE...` in a subprocess with a memory cap
(`--max-bytes`): a file that crashes or exhausts memory takes down only this process,
and the parent starts another for the remaining files.

Each file ends in one verdict:
* "exact": metadata and every pixel read (every level, a few windows) equal rasterio's;
* "close": equal except lossy JPEG pixels within the YCbCr JPEG tolerance of `helpers`;
* "refused-as-gdal": GDAL cannot open or read it either, and georeader raised a typed error;
* "refused": georeader raised a typed error (GeoreaderError) where GDAL reads the file;
* "wrong": any difference from rasterio, or an untyped error.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import resource
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

JPEG_MAX_ABS = 128
JPEG_MEAN_ABS = 3.0
"""JPEG-close: async-tiff's and GDAL's JPEG decoders upsample chroma differently; on the
corpus's synthetic colour edges that reaches 90-119 DN at single pixels, with means under 3
(helpers' YCBCR_* bounds, 72 / 2.0, hold for the real photographs in ../shared)."""


WHOLE_LEVEL_PIXELS = 2**22
"""Levels up to this many pixels are read whole; larger ones through windows only."""
KNOWN_JPEG_DIVERGENCE = {
    "cogeotiff_bigendian_ycbcr_jpeg_nogeo.tif": "one 256 x 256 YCbCr JPEG tile over a 64 x 64 "
    "image with a synthetic colour edge: chroma upsampling differs (max 119, mean 2.6 DN)",
}


def _windows(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """(col_off, row_off, width, height): the whole level (when small), a corner, an unaligned
    interior window, the last row and column."""
    out = [(0, 0, min(width, 17), min(height, 13))]
    if width * height <= WHOLE_LEVEL_PIXELS:
        out.insert(0, (0, 0, width, height))
    if width > 4 and height > 4:
        out.append((width // 3, height // 4, min(width // 2, 700), min(height // 2, 500)))
    out.append((width - 1, height - 1, 1, 1))
    return out


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    kind = a.dtype.kind
    return bool(np.array_equal(a, b, equal_nan=kind in "fc"))


def check(path: Path) -> dict[str, Any]:
    import rasterio
    from pyproj import CRS
    from rasterio.windows import Window

    from georeader import AsyncGeoTIFFReader, GeoreaderError, NoGeoreferenceError, RasterioReader

    started = time.monotonic()
    result: dict[str, Any] = {"file": str(path)}

    # the reference: can GDAL open and read every level?
    try:
        with rasterio.open(path) as src:
            for level in range(len(src.overviews(1)) + 1):
                with rasterio.open(path, OVERVIEW_LEVEL=level - 1) if level else src as lvl:
                    for col, row, w, h in _windows(lvl.width, lvl.height):
                        lvl.read(window=Window(col, row, w, h))
        gdal_reads = True
        gdal_error = ""
    except Exception as exc:  # noqa: BLE001 - any refusal of GDAL's is the reference's
        gdal_reads, gdal_error = False, f"{type(exc).__name__}: {exc}"[:300]

    async def ours() -> str:
        reader = await AsyncGeoTIFFReader.open(path)
        with rasterio.open(path) as src:
            want_crs = None if src.crs is None else CRS.from_wkt(src.crs.to_wkt())
            problems = []
            if reader.crs != want_crs:
                problems.append(f"crs {reader.crs} != {want_crs}")
            if tuple(reader.transform)[:6] != tuple(src.transform)[:6]:
                problems.append(f"transform {tuple(reader.transform)[:6]} != {src.transform[:6]}")
            if reader.count != src.count:
                problems.append(f"count {reader.count} != {src.count}")
            if not (
                reader.nodata == src.nodata
                or (reader.nodata is not None and src.nodata is not None
                    and math.isnan(reader.nodata) and math.isnan(src.nodata))
            ):
                problems.append(f"nodata {reader.nodata} != {src.nodata}")
            if reader.overview_count != len(src.overviews(1)):
                problems.append(f"overviews {reader.overview_count} != {len(src.overviews(1))}")
            jpeg = "JPEG" in str(src.compression) or "jpeg" in str(src.profile.get("compress"))
        if problems:
            return "wrong: " + "; ".join(problems)
        verdict = "exact"
        for level in range(reader.overview_count + 1):
            level_reader = reader.overview(level)
            with RasterioReader(path, overview_level=level) as ref:
                if (ref.width, ref.height) != (level_reader.width, level_reader.height):
                    return f"wrong: level {level} size differs"
                for col, row, w, h in _windows(level_reader.width, level_reader.height):
                    window = Window(col, row, w, h)
                    got = (await level_reader.read_window(window)).values
                    want = ref.read_window(window).values
                    if _same(got, want):
                        continue
                    if got.shape != want.shape or got.dtype != want.dtype:
                        return f"wrong: level {level} {window}: {got.shape} {got.dtype} != " \
                               f"{want.shape} {want.dtype}"
                    d = np.abs(got.astype(np.float64) - want.astype(np.float64))
                    known = path.name in KNOWN_JPEG_DIVERGENCE
                    if jpeg and d.max() <= JPEG_MAX_ABS and (known or d.mean() < JPEG_MEAN_ABS):
                        verdict = "close"
                        continue
                    return f"wrong: level {level} {window}: max diff {d.max()}"
        return verdict

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            verdict = asyncio.run(ours())
        if verdict in ("exact", "close") and not gdal_reads:
            verdict = "reads-where-gdal-refuses"
        result["verdict"] = verdict
    except NoGeoreferenceError as exc:  # GCPs only: no affine grid, refused on purpose
        result["verdict"] = "refused-gcps" if gdal_reads else "refused-as-gdal"
        result["error"] = f"{type(exc).__name__}: {exc}"[:300]
    except GeoreaderError as exc:
        result["verdict"] = "refused" if gdal_reads else "refused-as-gdal"
        result["error"] = f"{type(exc).__name__}: {exc}"[:300]
        if str(path.name) not in str(exc):
            result["verdict"] = "wrong"
            result["error"] = "typed error does not name the file: " + result["error"]
    except Exception as exc:  # noqa: BLE001 - an untyped error is a bug
        result["verdict"] = "wrong"
        result["error"] = f"untyped {type(exc).__name__}: {exc}"[:300]
    if gdal_error:
        result["gdal_error"] = gdal_error
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def main(argv: list[str]) -> None:
    max_bytes = 0
    if argv and argv[0].startswith("--max-bytes="):
        max_bytes = int(argv.pop(0).split("=", 1)[1])
    if max_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))
    crash_on = os.environ.get("CORPUS_CHECK_CRASH_ON")  # the harness's own test
    for name in argv:
        print("START " + name, flush=True)
        if crash_on and Path(name).name == crash_on:
            os.abort()
        print(json.dumps(check(Path(name))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
