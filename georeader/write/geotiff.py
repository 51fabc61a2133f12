"""Write a GeoTensor (or, via daskcog, a GeoArray's chunks) to a GeoTIFF or a COG.

The GDAL side of writing, shared by `GeoTensor.to_cog` and daskcog's chunked
writer (which imports this module; georeader never imports Dask):

1. the caller fills a temporary, uncompressed, tiled GTiff beside the output
   (uncompressed so a block that covers a tile partly is updated in place);
2. overviews (factors 2, 4, ... until one block holds the image) are built into
   it, nodata-aware, by GDAL;
3. GDAL copies it into the output with every core: the COG driver (a valid COG
   layout) or the GTiff driver (`COPY_SRC_OVERVIEWS`) for a plain tiled GeoTIFF;
   the output replaces the target only when the copy succeeded.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import rasterio
import rasterio.shutil

from georeader.errors import GeoreaderError
from georeader.geo.nodata import fits_dtype
from georeader.write import gdal_progress
from georeader.write.gdal_progress import StageProgress


class InMemoryRaster(Protocol):
    """What `write_geotensor` reads of a GeoTensor (named here, so the writer does not
    import the value it writes, and GeoTensor's `to_cog` can import the writer)."""

    @property
    def values(self) -> np.ndarray: ...
    @property
    def dtype(self) -> np.dtype: ...
    @property
    def shape(self) -> tuple[int, int, int]: ...
    @property
    def transform(self) -> Any: ...
    @property
    def crs(self) -> Any: ...

ProgressCallback = Callable[[int, int], None]
"""Called with (chunks written, chunks in total)."""

COMPRESSIONS = ("deflate", "zstd", "lzw", "lzma", "webp", "jpeg", "lerc", "packbits", "none")
_PREDICTOR_CODECS = ("deflate", "zstd", "lzw")


class WriteError(GeoreaderError, OSError):
    """Writing a GeoTIFF failed (bad options, unwritable path, GDAL error)."""


@dataclass(frozen=True)
class WriteOptions:
    """Resolved options of one write (see `write_raster`)."""

    cog: bool
    compress: str
    predictor: int
    level: int | None
    blocksize: int
    overviews: bool
    resampling: str
    nodata: float | None
    bigtiff: str
    extra: tuple[tuple[str, str], ...]

    def creation_options(self, dtype: np.dtype) -> dict[str, str]:
        """GDAL creation options of the final copy."""
        opts: dict[str, str] = {"BIGTIFF": self.bigtiff, "NUM_THREADS": "ALL_CPUS"}
        if self.compress != "none":
            opts["COMPRESS"] = self.compress.upper()
        if self.level is not None:
            opts["LEVEL"] = str(self.level)
        if self.cog:
            opts["BLOCKSIZE"] = str(self.blocksize)
            opts["OVERVIEWS"] = "AUTO" if self.overviews else "NONE"
            opts["OVERVIEW_RESAMPLING"] = self.resampling.upper()
            if self.predictor != 1:
                opts["PREDICTOR"] = "FLOATING_POINT" if self.predictor == 3 else "STANDARD"
        else:
            opts.update(TILED="YES", BLOCKXSIZE=str(self.blocksize), BLOCKYSIZE=str(self.blocksize))
            if self.predictor != 1:
                opts["PREDICTOR"] = str(self.predictor)
            if self.overviews:
                opts["COPY_SRC_OVERVIEWS"] = "YES"
        opts.update(dict(self.extra))
        return opts


def resolve_options(
    dtype: np.dtype,
    *,
    cog: bool,
    compress: str = "deflate",
    predictor: int | None = None,
    level: int | None = None,
    blocksize: int = 512,
    overviews: bool | None = None,
    resampling: str = "nearest",
    nodata: float | None = None,
    bigtiff: str = "IF_SAFER",
    creation_options: dict[str, Any] | None = None,
) -> WriteOptions:
    """Normalise and check the write options once (defaults depend on the dtype)."""
    compress = (compress or "none").lower()
    if compress not in COMPRESSIONS:
        raise WriteError(f"unknown compression {compress!r}; use one of {', '.join(COMPRESSIONS)}")
    if predictor is None:
        predictor = (3 if dtype.kind == "f" else 2) if compress in _PREDICTOR_CODECS else 1
    if predictor not in (1, 2, 3):
        raise WriteError(f"predictor must be 1 (none), 2 (integers) or 3 (floats), got {predictor}")
    if predictor == 3 and dtype.kind != "f":
        raise WriteError(f"predictor 3 (floating point) needs a float dtype, not {dtype}")
    if predictor != 1 and compress not in _PREDICTOR_CODECS:
        raise WriteError(
            f"a predictor only applies to {', '.join(_PREDICTOR_CODECS)}, not {compress}"
        )
    resampling_enum(resampling)
    if blocksize <= 0 or blocksize % 16:
        raise WriteError(f"blocksize must be a positive multiple of 16, got {blocksize}")
    if (
        nodata is not None
        and dtype.kind in "iu"
        and not np.isnan(nodata)
        and not fits_dtype(nodata, dtype)
    ):
        raise WriteError(f"nodata {nodata} cannot be stored in {dtype}")
    extra = tuple(sorted((str(k).upper(), str(v)) for k, v in (creation_options or {}).items()))
    return WriteOptions(
        cog=cog,
        compress=compress,
        predictor=predictor,
        level=level,
        blocksize=blocksize,
        overviews=cog if overviews is None else bool(overviews),
        resampling=resampling,
        nodata=nodata,
        bigtiff=bigtiff.upper(),
        extra=extra,
    )


def tiff_profile(
    shape: tuple[int, int, int], dtype: Any, transform: Any, crs: Any, opts: WriteOptions
) -> dict[str, Any]:
    count, height, width = shape
    if min(shape) <= 0:
        raise WriteError(f"cannot write an empty array of shape {shape}")
    return dict(
        driver="GTiff",
        width=width,
        height=height,
        count=count,
        dtype=np.dtype(dtype).name,
        transform=transform,
        crs=None if crs is None else rasterio.crs.CRS.from_wkt(crs.to_wkt()),
        nodata=opts.nodata,
        tiled=True,
        blockxsize=opts.blocksize,
        blockysize=opts.blocksize,
        bigtiff="IF_SAFER",
        sparse_ok=False,
    )


def write_via_temp(
    path: Path,
    profile: dict[str, Any],
    opts: WriteOptions,
    fill: Callable[[Any], None],
    tmpdir: str | os.PathLike[str] | None,
    finish_progress: StageProgress | None = None,
) -> Path:
    """Fill a temporary tiled GTiff, then let GDAL copy it into the final layout.

    The output appears under its name only once complete (a temporary name, then
    `os.replace`); on any failure or Ctrl-C every temporary file is removed.
    `finish_progress(stage, fraction)` reports the overviews and the final copy
    (GDAL's progress callback, `georeader.write.gdal_progress`), which also lets Ctrl-C
    stop GDAL within a block instead of after the whole copy.
    """
    folder = Path(tmpdir) if tmpdir is not None else path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.tif", dir=folder)
    os.close(fd)
    out_tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with_progress = gdal_progress.available()
    try:
        with rasterio.Env(GDAL_PAM_ENABLED=False, GDAL_CACHEMAX=256):
            factors = (
                overview_factors(profile["width"], profile["height"], opts.blocksize)
                if opts.overviews
                else []
            )
            with rasterio.open(tmp_name, "w", **profile) as tmp:
                fill(tmp)
                if factors and not with_progress:
                    # built here, uncompressed, and copied by GDAL: the COG driver would
                    # otherwise build them into a compressed temporary file (~15% slower)
                    tmp.build_overviews(factors, resampling_enum(opts.resampling))
            if factors and with_progress:
                resampling_enum(opts.resampling)  # an unknown name: WriteError, as above
                try:
                    gdal_progress.build_overviews(
                        tmp_name, factors, opts.resampling, progress=finish_progress
                    )
                except gdal_progress.GDALCallError as exc:
                    raise WriteError(f"{path}: {exc}") from None
            driver = "COG" if opts.cog else "GTiff"
            creation = opts.creation_options(np.dtype(profile["dtype"]))
            try:
                if with_progress:
                    gdal_progress.create_copy(
                        tmp_name, str(out_tmp), driver,
                        {k: str(v) for k, v in creation.items()}, progress=finish_progress,
                    )
                else:
                    rasterio.shutil.copy(tmp_name, str(out_tmp), driver=driver, **creation)
            except gdal_progress.GDALCallError as exc:
                raise WriteError(f"{path}: GDAL could not write the {driver}: {exc}") from None
            except rasterio.errors.RasterioError as exc:
                raise WriteError(f"{path}: GDAL could not write the {driver}: {exc}") from exc
        os.replace(out_tmp, path)
    finally:
        for leftover in (tmp_name, out_tmp, Path(f"{tmp_name}.ovr")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
    return path


def resampling_enum(name: str) -> Any:
    from rasterio.enums import Resampling

    try:
        return Resampling[name.lower()]
    except KeyError:
        names = ", ".join(r.name for r in Resampling if r.value < 14)
        raise WriteError(f"unknown overview resampling {name!r}; use one of {names}") from None


def overview_factors(width: int, height: int, blocksize: int) -> list[int]:
    """2, 4, 8, ... until the coarsest overview fits in one block (GDAL's COG rule)."""
    factors, factor = [], 2
    while max(width, height) / (factor // 2) > blocksize:
        factors.append(factor)
        factor *= 2
    return factors


def write_geotensor(
    tensor: InMemoryRaster,
    path: str | os.PathLike[str],
    *,
    cog: bool = True,
    nodata: float | None = None,
    tmpdir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Path:
    """Write an in-memory GeoTensor (options as `resolve_options`); returns the path."""
    path = Path(path).expanduser()
    opts = resolve_options(np.dtype(tensor.dtype), cog=cog, nodata=nodata, **options)
    if not path.parent.is_dir():
        raise WriteError(f"{path}: the output folder {path.parent} does not exist")
    profile = tiff_profile(tensor.shape, tensor.dtype, tensor.transform, tensor.crs, opts)
    return write_via_temp(path, profile, opts, lambda tmp: tmp.write(tensor.values), tmpdir)
