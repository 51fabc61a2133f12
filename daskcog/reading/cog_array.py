"""daskcog.open: a COG's tile grid as a dask array.

Graph strategy (read top to bottom: entry point, then the task functions in the
order they run):

* The client fetches the header once (through this process's reader cache) to
  learn shape, dtype, tiling and georeference.
* The graph is `da.from_array` over `BlockReader`, a light array-like that
  holds only a `ReadSpec` of plain values (URL, store options, level, bands,
  window). Dask builds that as one blockwise layer: constant time and memory
  whatever the chunk count, and deterministic keys from the spec's token.
* Each chunk task is a plain sync function (`BlockReader.__getitem__`), so it
  works on every scheduler and survives graph fusion. It finds the header in the
  per-process `reader_cache` (so each worker fetches a header once, not once per
  chunk) and runs georeader's read steps over it, with no reader object: a local
  file's tiles are `pread` in the task's thread; a remote file's are fetched by
  submitting georeader's async `fetch_native` to an event loop of the process
  (`io_loop`), with read-ahead of the neighbouring chunks; either way the tiles are
  decoded and assembled in the task's own (Dask) thread (`assemble_window`), so the
  decoding runs on Dask's threads, as many at once as Dask runs tasks.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from rasterio.windows import Window

from daskcog.reading import arguments, chunking
from daskcog.reading.geoarray import GeoArray
from daskcog.runtime import credentials as creds
from daskcog.runtime import failures, read_ahead, settings
from daskcog.runtime.io_loop import LoopChoice, run_sync
from daskcog.runtime.reader_cache import CACHE, cache_key, default_retry
from georeader import (
    NATIVE,
    Assembled,
    AsyncGeoTIFFReader,
    assemble_window,
    fetch_local,
    fetch_native,
    parse_location,
    reads_locally,
)
from georeader.errors import GeoreaderError, InvalidURLError, UnknownOptionError, WindowError
from georeader.geo import check_fill
from georeader.io import (
    SIGNING_OPTIONS,
    Location,
    RetryPolicy,
    check_not_folder,
    check_store_options,
    split_signed_url,
)
from georeader.reader import Fetched


@dataclass(frozen=True)
class ReadSpec:
    """Everything a chunk task needs, as plain picklable values (no reader, no store)."""

    location: Location
    """The object, parsed once when `open` was called (its signed query, a credential, is
    not part of it: it travels as a store option, kept out of the graph)."""
    store_options: tuple[tuple[str, Any], ...]
    overview_level: int
    bands: tuple[int, ...]
    window: tuple[int, int, int, int]
    """(col_off, row_off, width, height) in the level's pixels; may reach outside (boundless)."""
    dtype: str
    fill_value: float | int
    tile: tuple[int, int]
    loop: LoopChoice = "io-thread"
    errors: str = "raise"
    """"raise": a failed chunk raises its typed error; "nodata": it is filled and recorded."""
    retry: RetryPolicy = RetryPolicy()
    """How every read of this array retries (header opens included), in every process."""
    credentials: str | None = None
    """Name of a credential set registered in each worker process (never the secrets)."""
    masked: bool = False
    """The file has no nodata but a GDAL mask (an internal mask, or an alpha band): its
    invalid pixels are read as `fill_value`, which then marks missing pixels (xarray's
    `_FillValue`) though the file states no nodata."""

    @property
    def url(self) -> str:
        """The object's normalised URL (never a signed query)."""
        return self.location.url

    @property
    def options(self) -> dict[str, Any]:
        """Store options with the named credentials resolved in this process."""
        return creds.with_secrets(self.store_options, self.credentials, self.url)

    @property
    def token(self) -> str:
        return tokenize(self)

    def isel_window(
        self, window: Window, chunks: Any, *, transform: Any, crs: Any, nodata: float | None
    ) -> GeoArray:
        """The GeoArray of a sub-window (in this spec's window's pixels): a graph of its own."""
        sub = sub_spec(self, window)
        return from_spec(sub, chunks, transform=transform, crs=crs, nodata=nodata)


def open(  # noqa: A001 - the package's entry point mirrors rasterio.open / rioxarray.open_rasterio
    url: str | os.PathLike[str],
    *,
    chunks: Any = "auto",
    overview_level: int = 0,
    resolution: float | tuple[float, float] | None = None,
    bands: int | Sequence[int] | None = None,
    fill_value: float | None = None,
    loop: LoopChoice = "io-thread",
    errors: str = "raise",
    retry: RetryPolicy | None = None,
    credentials: str | None = None,
    sign: Callable[[str], Any] | None = None,
    requester_pays: bool = False,
    store: Any = None,
    **store_options: Any,
) -> GeoArray:
    """Open a COG lazily: a GeoArray whose `.data` chunks follow the file's tile grid.

    Args:
        url: local path, file://, s3://, gs://, az://, http(s):// or memory:// URL; an
            http(s) URL may be signed (presigned S3, Azure SAS, any token in its query):
            the query is kept out of the graph like any secret.
        chunks: "auto", a byte size ("64MiB", dask's spelling), an int, a (band, y, x)
            tuple or a dict; rounded to tile multiples.
        overview_level: 0 for full resolution, 1.. for the overviews (finest first).
        resolution: pick the coarsest level whose pixels are no larger than this
            (positive; refused otherwise).
        bands: 1-based band numbers to keep (default: all); one int like rasterio's
            `indexes=1`, the array keeping its band axis.
        fill_value: value of invalid and outside pixels (default: nodata, else 0).
        loop: "io-thread" (default) runs reads on a per-process I/O loop; "worker"
            uses the distributed worker's own loop when there is one.
        errors: "raise" (default): a failed chunk raises its typed error naming the URL
            and window; "nodata": the chunk is filled with the fill value and recorded
            (see `daskcog.failure_report`).
        retry: how transient failures are retried, the header fetch included (default:
            georeader's, `RetryPolicy()`); it travels in the graph to every chunk.
        credentials: name of credentials registered on the workers
            (`daskcog.credentials.register_on_cluster`); secrets given as store options
            are split off and registered under an anonymous name instead.
        sign: `sign(url) -> signed url` (e.g. `planetary_computer.sign`), run in the
            process that reads, before the signed URL's known expiry and once again
            after a read is refused (401 / 403); kept out of the graph like a secret.
        requester_pays: the requester pays for the requests (S3's `request_payer`).
        store: not supported in graphs (stores can hold credentials); give the
            store's options as keyword arguments instead.
        **store_options: obstore options (region, endpoint, client_options, ...).
    """
    if store is not None:
        raise UnknownOptionError(
            "daskcog.open does not put live store objects into task graphs; pass the URL and "
            "obstore options (e.g. region=..., endpoint=..., client_options=...) instead"
        )
    arguments.one_of("errors", errors, ("raise", "nodata"))
    arguments.one_of("loop", loop, ("io-thread", "worker"))
    url, store_options = split_signed_url(url, store_options)
    if not os.fspath(url):
        raise InvalidURLError("daskcog.open: the path or URL is empty")
    where = f"{os.fspath(url).partition('?')[0]}: "
    resolution = arguments.resolution(resolution, where)
    arguments.retry(retry, where)
    bands = arguments.bands(bands, where)
    overview_level = arguments.overview_level(overview_level, where)
    if sign is not None:
        store_options["sign"] = sign
    if requester_pays:
        store_options["requester_pays"] = True
    check_store_options(os.fspath(url), store_options, entry_keywords=OPEN_KEYWORDS)
    location = parse_location(url)  # the one parse: the spec and the opener carry it
    check_not_folder(location)  # a clear error now, not a store's later
    public, credential_name = creds.keep_out_of_graph(store_options, credentials, location.url)
    options = tuple(sorted(public.items()))
    full_options = (
        creds.merge(public, creds.resolve(credential_name, location.url))
        if credential_name
        else public
    )
    retry = retry or default_retry()
    opened = run_sync(CACHE.opened(location, full_options, retry=retry))
    reader = CACHE.make_reader(
        opened, overview_level=overview_level, bands=bands, resolution=resolution
    )
    spec = ReadSpec(
        location=location,
        store_options=options,
        overview_level=reader.overview_level,
        bands=tuple(reader.bands),
        window=(0, 0, reader.width, reader.height),
        dtype=str(reader.dtype),
        fill_value=check_fill(
            reader.fill_value_default if fill_value is None else fill_value,
            reader.dtype,
            location.url,
        ),
        tile=reader.block_shape,
        loop=loop,
        errors=errors,
        retry=retry,
        credentials=credential_name,
        masked=reader.nodata is None and (
            opened.alpha_index is not None
            or opened.levels[reader.overview_level].mask_ifd is not None
        ),
    )
    return from_spec(spec, chunks, transform=reader.transform, crs=reader.crs, nodata=reader.nodata)


OPEN_KEYWORDS = frozenset(inspect.signature(open).parameters) - {"url", "store_options"}
"""`open`'s own keywords: a close misspelling of one is suggested (`chunck` -> `chunks`)."""


def from_spec(
    spec: ReadSpec, chunks: Any, *, transform: Any, crs: Any, nodata: float | None
) -> GeoArray:
    """The GeoArray for a ReadSpec: one blockwise layer, keys from the spec's token."""
    col_off, row_off, width, height = spec.window
    dtype = np.dtype(spec.dtype)
    normalised = chunking.tile_chunks(
        chunks, window=spec.window, count=len(spec.bands), tile=spec.tile, itemsize=dtype.itemsize
    )
    name = f"daskcog-read-{tokenize(spec, normalised)}"
    grid = read_ahead.ChunkGrid.from_chunks(row_off, col_off, normalised[1], normalised[2])
    data = array_over(BlockReader(spec, grid), normalised, name, dtype)
    from georeader.geo import window_transform

    return GeoArray(
        data,
        transform=window_transform(Window(col_off, row_off, width, height), transform),
        crs=crs,
        fill_value_default=spec.fill_value,
        nodata=nodata,
        source=spec,
        chunk_request=chunks,
        base_transform=transform,
    )


def valid_reads(spec: ReadSpec, chunks: tuple[tuple[int, ...], ...]) -> da.Array:
    """The spec's pixels as masked chunks, masked where GDAL's mask hides them (an internal
    mask, alpha == 0, nodata, padding): what rasterio's masked read gives, for a reduction
    that must not take the fill value for a mask (`daskcog.stats`). One read per chunk,
    like the array's own."""
    name = f"daskcog-read-valid-{tokenize(spec, chunks)}"
    return da.from_array(
        BlockReader(spec, with_valid=True), chunks=chunks, name=name, lock=False,
        asarray=False, fancy=False, meta=np.ma.masked_array(np.empty((0, 0, 0), spec.dtype)),
    )


def array_over(blocks: Any, chunks: tuple[tuple[int, ...], ...], name: str, dtype: Any) -> da.Array:
    """One blockwise layer over `blocks`, a light array-like sliced once per chunk task.

    No lock, no `np.asarray` of the source and no fancy indexing: the slices
    go to `blocks.__getitem__` as they are (shared by reads, mosaics and stacks).
    """
    return da.from_array(
        blocks,
        chunks=chunks,
        name=name,
        lock=False,
        asarray=False,
        fancy=False,
        meta=np.empty((0,) * len(chunks), dtype=dtype),
    )


class BlockReader:
    """Array-like that `da.from_array` slices, one slice per chunk task.

    A process unpickles it once per graph, and its chunk tasks share it: what every chunk
    would otherwise work out again is worked out here once while the header stays cached
    (the store options with the named credentials resolved, the reader cache's key, and
    per band subset the level and how it is read), so a chunk is a cache lookup, one
    window fetch and one assembly: georeader's read steps over the cached header, no
    reader object (the GDAL route, which reads through rasterio, keeps its reader).
    """

    def __init__(
        self, spec: ReadSpec, grid: read_ahead.ChunkGrid | None = None, with_valid: bool = False
    ) -> None:
        self.spec = spec
        self.grid = grid
        self.with_valid = with_valid
        """Chunks are masked arrays, masked where GDAL's mask hides a pixel (`valid_reads`)."""
        self._array: str | None = None
        self._resolved: tuple[dict[str, Any], tuple[str, str] | None] | None = None
        self._held: dict[tuple[int, ...], _Held] = {}
        self.shape = (len(spec.bands), spec.window[3], spec.window[2])
        self.dtype = np.dtype(spec.dtype)
        self.ndim = 3

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        band_slice, row_slice, col_slice = key
        spec = self.spec
        b0, b1, _ = band_slice.indices(self.shape[0])
        r0, r1, _ = row_slice.indices(self.shape[1])
        c0, c1, _ = col_slice.indices(self.shape[2])
        if r1 <= r0 or c1 <= c0 or b1 <= b0:
            return np.empty((max(b1 - b0, 0), max(r1 - r0, 0), max(c1 - c0, 0)), self.dtype)
        if self._array is None:
            self._array = f"{spec.token}-{b0}-{b1}"
        col_off, row_off = spec.window[0] + c0, spec.window[1] + r0
        try:
            got = self.assembled(spec.bands[b0:b1], col_off, row_off, c1 - c0, r1 - r0)
            return np.ma.MaskedArray(got.values, mask=~got.valid) if self.with_valid else got.values
        except GeoreaderError as exc:
            where = (col_off, row_off, c1 - c0, r1 - r0)
            if spec.errors == "nodata":
                failures.record(spec.token, spec.url, where, exc)
                filled = np.full((b1 - b0, r1 - r0, c1 - c0), spec.fill_value, self.dtype)
                return np.ma.masked_all_like(filled) if self.with_valid else filled
            if "window" not in str(exc):
                exc.add_note(
                    f"chunk window col_off={where[0]}, row_off={where[1]}, "
                    f"width={where[2]}, height={where[3]}"
                )
            raise

    def __reduce__(self) -> tuple[Any, ...]:
        return (BlockReader, (self.spec, self.grid, self.with_valid))

    def read(
        self, bands: tuple[int, ...], col_off: int, row_off: int, width: int, height: int
    ) -> np.ndarray:
        """One window of the level (it may reach outside: padded with the fill value), for
        callers outside Dask's slicing (`read_block`); a chunk calls `assembled` itself (one
        function less on its path, tests/daskcog/test_chunk_path.py)."""
        return self.assembled(bands, col_off, row_off, width, height).values

    def assembled(
        self, bands: tuple[int, ...], col_off: int, row_off: int, width: int, height: int
    ) -> Assembled:
        """One window of the level with what assembling it learnt of its validity.

        With the header in this process (the usual case): a local file is read here in one
        pass (no event loop), a remote one is fetched on the I/O loop (with read-ahead of
        the chunks around it) and decoded here, in the Dask thread; a cold header is
        fetched first, once per process (the reader cache).
        """
        spec = self.spec
        resolved = self._resolved
        if resolved is None:
            resolved = self._resolved = self._resolve()
        options, key = resolved
        opened = CACHE.peek_key(key) if key is not None else CACHE.peek(spec.url, options)
        if opened is None:
            # a cold header (first use, a cleared cache): resolve the credentials again, so
            # an unregistered or replaced credential set is seen, as each chunk used to see it
            options, _ = self._resolved = self._resolve()
            opened = run_sync(
                CACHE.opened(spec.location, options, retry=spec.retry), spec.loop
            )
        held = self._held.get(bands)
        if held is None or held[0] is not opened:  # first chunk, or a new header
            held = self._held[bands] = _hold(opened, spec, bands)
        level, how, reader = held[1], held[2], held[3]
        window = Window(col_off, row_off, width, height)
        c0, r0 = max(col_off, 0), max(row_off, 0)
        c1, r1 = min(col_off + width, level.width), min(row_off + height, level.height)
        inside = None
        if c1 > c0 and r1 > r0:
            inside = window if (c0, r0, c1, r1) == (col_off, row_off, col_off + width,
                                                     row_off + height) else Window(
                c0, r0, c1 - c0, r1 - r0)
        if how == "local":
            fetched = (
                None if inside is None else fetch_local(opened, level, inside, spec.location.url)
            )
        elif how == "native":
            fetched = run_sync(
                fetch_remote(spec, opened, level, window, inside, self.grid, self._array),
                spec.loop,
            )
        else:  # GDAL's route: the reader reads through rasterio
            pending = run_sync(reader.fetch_window(window, fill_value=spec.fill_value), spec.loop)
            return pending.assemble()
        return assemble_window(opened, level, bands, window, inside, spec.fill_value, fetched)

    def _resolve(self) -> tuple[dict[str, Any], tuple[str, str] | None]:
        """(store options with secrets, the reader cache's key or None when the options sign
        URLs: then each chunk hands the newest token over, through `cache_key`)."""
        settings.apply_georeader()
        options = self.spec.options
        signed = not SIGNING_OPTIONS.isdisjoint(options)
        return options, None if signed else cache_key(self.spec.url, options)


_Held = tuple[Any, Any, str, Any]
"""(the header it was worked out for, the level, how it is read, a reader or None)."""


def _hold(opened: Any, spec: ReadSpec, bands: tuple[int, ...]) -> _Held:
    """What every chunk of one band subset shares while the header is the cached one: the
    level and how it is read ("local": `pread` here, "native": georeader's fetch on the I/O
    loop, "gdal": a reader over the header, which reads through rasterio)."""
    reader = AsyncGeoTIFFReader.from_opened(
        opened, overview_level=spec.overview_level, bands=bands
    )  # checks the level and the bands against this header
    reader.retry = spec.retry
    level = opened.levels[spec.overview_level]
    if reads_locally(opened, level):
        return (opened, level, "local", None)
    if opened.layout.route == NATIVE:
        return (opened, level, "native", None)
    return (opened, level, "gdal", reader)


def read_block(spec: ReadSpec, bands: Sequence[int], window: Window) -> np.ndarray:
    """One window of any band list (xarray's backend), by a `BlockReader` of the spec."""
    return BlockReader(spec).read(
        tuple(bands), int(window.col_off), int(window.row_off), int(window.width),
        int(window.height),
    )


async def fetch_remote(
    spec: ReadSpec, opened: Any, level: Any, window: Window, inside: Window | None,
    grid: read_ahead.ChunkGrid | None, array: str | None,
) -> Fetched | None:
    """One window's tiles (georeader's `fetch_native` with the spec's retry policy), and
    read-ahead of the chunks around it once this one's requests are on their way."""
    own = (
        None
        if inside is None
        else asyncio.ensure_future(
            fetch_native(opened, level, inside, spec.location.url, spec.retry)
        )
    )
    if grid is not None and array is not None:
        read_ahead.start(
            opened, level, grid, array,
            (int(window.col_off), int(window.row_off), int(window.width), int(window.height)),
            spec.retry,
        )
    return None if own is None else await own


def sub_spec(spec: ReadSpec, window: Window) -> ReadSpec:
    """The spec of a sub-window (in the current window's pixel coordinates)."""
    if window.width <= 0 or window.height <= 0:
        raise WindowError(f"empty window {window!r}")
    col_off, row_off = spec.window[0] + int(window.col_off), spec.window[1] + int(window.row_off)
    return replace(spec, window=(col_off, row_off, int(window.width), int(window.height)))
