"""Write a GeoArray (or a GeoTensor) to a GeoTIFF or a Cloud-Optimized GeoTIFF.

Strategy (memory bounded by chunks, not by the raster):

1. Blocks are computed chunk by chunk and written into a temporary,
   uncompressed, tiled GTiff beside the output (uncompressed so a block that
   covers a tile partly is updated in place, never appended twice):
   * on local schedulers (threads, sync) with `dask.array.store` into a
     lock-protected rasterio writer: each chunk is written as soon as it is
     computed and then dropped;
   * on a distributed cluster the chunks must come back to this process (the
     output path is local to it), so they are computed in batches of a few per
     worker thread with the next batch already running while this one is
     written.
2. Overviews (factors 2, 4, ... until one block holds the image) are built
   into the temporary file, nodata-aware, by GDAL.
3. GDAL copies the temporary file into the output, compressing with every
   core: the COG driver (a valid COG layout, the overviews copied as they
   are) or the GTiff driver (`COPY_SRC_OVERVIEWS`) for a plain tiled GeoTIFF.

`progress(done, total)` is called after each written chunk.

An object-store URL (s3://, gs://, az://) as the output: steps 1-3 run into a
local temporary folder (`tmpdir`, default the system's), then the finished file
is uploaded in one multipart upload (`georeader.upload`: bounded memory, atomic,
no partial object on failure), with the same credential rules as reads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from rasterio.windows import Window

from georeader.write import (
    COMPRESSIONS,
    ProgressCallback,
    StageProgress,
    WriteError,
    WriteOptions,
    overview_factors,
    resolve_options,
    tiff_profile,
    write_via_temp,
)

if TYPE_CHECKING:
    import dask.array as da

    from georeader.geo import GeoTensor


class LazyRaster(Protocol):
    """What `write_raster` reads of a GeoArray (named here so this module needs not import
    `GeoArray`, whose `to_raster` / `write` import this one)."""

    @property
    def data(self) -> da.Array: ...

    @property
    def transform(self) -> Any: ...

    @property
    def crs(self) -> Any: ...

    @property
    def nodata(self) -> float | None: ...

    @property
    def dtype(self) -> Any: ...

    @property
    def shape(self) -> tuple[int, int, int]: ...

_AUTO: Any = object()
__all__ = ["COMPRESSIONS", "WriteError", "WriteOptions", "overview_factors", "write_raster"]


# -- public entry points ------------------------------------------------------
def write_raster(
    source: LazyRaster | GeoTensor,
    path: str | os.PathLike[str],
    *,
    cog: bool = True,
    nodata: float | None = _AUTO,
    scheduler: Any = None,
    progress: ProgressCallback | None = None,
    finish_progress: StageProgress | None = None,
    tmpdir: str | os.PathLike[str] | None = None,
    credentials: str | None = None,
    store_options: dict[str, Any] | None = None,
    **options: Any,
) -> Path | str:
    """Write `source` to `path` as a COG (`cog=True`) or a tiled GeoTIFF.

    Args:
        source: a GeoArray (computed chunk by chunk) or a GeoTensor (in memory).
        path: local output path, replaced atomically when the write succeeds; or an
            object-store URL (s3://, gs://, az://), uploaded when the file is finished.
        credentials: for a URL: name of credentials registered in this process.
        store_options: for a URL: obstore options (region, endpoint, keys, ...).
        cog: COG layout (overviews first, validated by rio-cogeo) or a plain tiled GTiff.
        nodata: nodata value to write (default: the GeoArray's nodata; none for a GeoTensor).
        scheduler: Dask scheduler to use (default: the active one).
        progress: called with (chunks written, chunks in total).
        finish_progress: called with (stage, fraction done) while GDAL builds the
            overviews and copies the file into its final layout (GDAL's progress
            callback); Ctrl-C there stops GDAL within a block, leaving no file.
        tmpdir: folder of the temporary file (default: the output's folder).
        **options: `georeader.raster_writer.resolve_options`: compress ("deflate"),
            predictor (2 for ints, 3 for floats), level, blocksize (512), overviews,
            resampling ("nearest"), bigtiff, creation_options.
    """
    from georeader.geo import GeoTensor
    from georeader.io import is_store_url, staged_upload
    from georeader.write import write_geotensor

    if is_store_url(path):
        url = str(path)
        with staged_upload(
            url, tmpdir=tmpdir, **_output_options(store_options, credentials, url)
        ) as local:
            write_raster(
                source, local, cog=cog, nodata=nodata, scheduler=scheduler, progress=progress,
                finish_progress=finish_progress, tmpdir=local.parent, **options,
            )
        return url
    if credentials is not None or store_options:
        raise WriteError(f"{path}: credentials and store options are for object-store outputs")
    if isinstance(source, GeoTensor):
        written = write_geotensor(
            source,
            path,
            cog=cog,
            nodata=None if nodata is _AUTO else nodata,
            tmpdir=tmpdir,
            **options,
        )
        if progress is not None:
            progress(1, 1)
        return written
    path = Path(path).expanduser()
    opts = resolve_options(
        np.dtype(source.dtype),
        cog=cog,
        nodata=source.nodata if nodata is _AUTO else nodata,
        **options,
    )
    if not path.parent.is_dir():
        raise WriteError(f"{path}: the output folder {path.parent} does not exist")
    profile = tiff_profile(source.shape, source.dtype, source.transform, source.crs, opts)
    return write_via_temp(
        path, profile, opts, lambda tmp: _store_dask(source.data, tmp, scheduler, progress), tmpdir,
        finish_progress,
    )


def _output_options(
    store_options: dict[str, Any] | None, credentials: str | None, url: str
) -> dict[str, Any]:
    """Store options of an output, with named credentials resolved (this process uploads)."""
    from daskcog.runtime import credentials as creds
    options = dict(store_options or {})
    if credentials is None:
        return options
    if creds.split_secrets(options)[1]:
        raise ValueError("give either credentials=NAME or secret store options, not both")
    return creds.merge(options, creds.resolve(credentials, url))


# -- chunk by chunk ------------------------------------------------------------
class _LockedWriter:
    """`dask.array.store` target: writes (band, y, x) slices into an open rasterio dataset."""

    def __init__(self, dataset: Any, total: int, progress: ProgressCallback | None) -> None:
        self.dataset = dataset
        self.shape = (dataset.count, dataset.height, dataset.width)
        self.dtype = np.dtype(dataset.dtypes[0])
        self.ndim = 3
        self.lock = threading.Lock()
        self.total = total
        self.done = 0
        self.progress = progress
        self.closed = False

    def close(self) -> None:
        """No more writes: after a failed `store`, Dask's other threads may still finish
        chunks, and writing into the then-closed GDAL dataset would crash the process."""
        with self.lock:
            self.closed = True

    def __setitem__(self, key: tuple[slice, slice, slice], value: np.ndarray) -> None:
        with self.lock:
            if self.closed:
                return
            _write_block(self.dataset, key, value)
            self.done += 1
            if self.progress is not None:
                self.progress(self.done, self.total)


def _write_block(dataset: Any, key: tuple[slice, ...], value: np.ndarray) -> None:
    bands, rows, cols = key
    b0, b1, _ = bands.indices(dataset.count)
    r0, r1, _ = rows.indices(dataset.height)
    c0, c1, _ = cols.indices(dataset.width)
    dataset.write(
        np.asarray(value),
        indexes=list(range(b0 + 1, b1 + 1)),
        window=Window(c0, r0, c1 - c0, r1 - r0),
    )


def _distributed_client(data: da.Array, scheduler: Any) -> Any:
    """The distributed Client that would run `data`, or None for local schedulers."""
    import dask.base

    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    if isinstance(scheduler, Client):
        return scheduler
    get = dask.base.get_scheduler(scheduler=scheduler, collections=[data])
    owner = getattr(get, "__self__", None)
    return owner if isinstance(owner, Client) else None


def _store_dask(
    data: da.Array, dataset: Any, scheduler: Any, progress: ProgressCallback | None
) -> None:
    import dask.array as da

    total = int(np.prod(data.numblocks))
    client = _distributed_client(data, scheduler)
    if client is None:
        writer = _LockedWriter(dataset, total, progress)
        try:
            # dask types `store` targets as arrays; any object with __setitem__ is accepted
            target: Any = writer
            da.store(data, target, lock=False, compute=True, scheduler=scheduler)
        finally:
            writer.close()
        return
    for done, (key, value) in enumerate(gather_in_batches(client, data), start=1):
        _write_block(dataset, key, value)
        if progress is not None:
            progress(done, total)


def gather_in_batches(
    client: Any, data: da.Array
) -> Iterator[tuple[tuple[slice, ...], np.ndarray]]:
    """Chunks of `data` computed on the cluster, a few per worker thread at a time.

    Two batches are in flight: the cluster computes the next one while this
    process writes the current one, so neither waits long and at most two
    batches of chunks are held anywhere.
    """
    from dask.array.core import slices_from_chunks
    from distributed import as_completed

    slices = slices_from_chunks(data.chunks)
    blocks = data.to_delayed().ravel().tolist()
    threads = sum(client.nthreads().values()) or 1
    batch = max(2, 2 * threads)
    groups = [list(range(i, min(i + batch, len(blocks)))) for i in range(0, len(blocks), batch)]
    pending: list[tuple[list[int], list[Any]]] = []

    def submit(group: list[int]) -> None:
        pending.append((group, client.compute([blocks[i] for i in group])))

    for group in groups[:2]:
        submit(group)
    next_group = 2
    while pending:
        group, futures = pending.pop(0)
        index = {id(f): i for f, i in zip(futures, group, strict=True)}
        for future in as_completed(futures, loop=client.loop):
            value = future.result()
            yield slices[index[id(future)]], value
            future.release()
        if next_group < len(groups):
            submit(groups[next_group])
            next_group += 1
