"""The chunk tasks of a mosaic or stack: one output chunk from the scenes that cover it.

`mosaic.mosaic` (and `stack.stack`, the STAC loaders) build a `MosaicSpec` of plain
values; the graph slices `MosaicBlocks` over it, one task per output chunk. Data
flows down this module in the order it runs:

* `MosaicBlocks.__getitem__` finds the chunk's scenes with a vectorised footprint
  test (`SceneIndex`, through `MosaicSpec.candidates`), then runs `mosaic_block`
  on the process's I/O loop through `run_here`: the loop fetches, and the CPU work
  (`offload`: decoding, warping) comes back to this Dask thread (one threading model
  with `daskcog.open`; why in `run_here`).
* `mosaic_block` reads scenes in priority batches (`scene_batches`), each batch
  concurrently (`asyncio.gather`), and feeds them to the method in the chunk's Dask
  thread (`_Feeder`, through `offload`: the method's numpy work stays off the I/O
  loop); `first`/`last` stop as soon as every pixel is filled. With errors="nodata" a
  failed scene is recorded in the failure report and counts as having no valid pixel.
* `read_scene` reads one scene for one chunk through the process's reader cache.
  A scene on the grid's CRS and resolution whose origin is a whole number of
  pixels away is a plain window read (exact). Any other scene reads the overview
  that fits the grid's resolution (`choose_level`) and warps it with GDAL (`warp`;
  a nearest warp that recurs across revisits is a gather through a cached plan,
  `warp_plans`), in the chunk's Dask thread, onto the part of the chunk the scene's footprint
  reaches (`footprint_part`), from a source window covering that part plus the
  resampling kernel's margin (`source_window`), with the fill value as source and
  destination nodata so invalid pixels stay invalid; a scene with no nodata value is
  warped with none (its zeros are data) and its validity comes from the warp
  (`warp_valid`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import os
import queue
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from affine import Affine
from dask.base import tokenize
from rasterio.windows import Window

from daskcog.mosaics.crs import same_crs
from daskcog.mosaics.grid import aligned_offset
from daskcog.mosaics.methods import FirstMethod, LastMethod, MosaicMethod
from daskcog.mosaics.scenes import SceneMismatchError, check_header
from daskcog.mosaics.spec import MosaicSpec
from daskcog.mosaics.warp import (
    Part,
    WarpGeometry,
    footprint_part,
    grid_tag,
    level_scales,
    revisited,
    source_window,
    warp,
    warp_valid,
)
from daskcog.runtime import failures, process_state, settings
from daskcog.runtime.io_loop import LoopChoice, io_loop, worker_loop
from daskcog.runtime.reader_cache import CACHE
from georeader import Assembled, AsyncGeoTIFFReader, choose_level, geo
from georeader.errors import GeoreaderError
from georeader.geo import fits_dtype, nodata_mask


class MosaicBlocks:
    """Array-like that `da.from_array` slices: (band, y, x), or (step, band, y, x) for stacks."""

    def __init__(self, spec: MosaicSpec, ndim: int = 3) -> None:
        self.spec = spec
        self.ndim = ndim
        grid = spec.grid
        plane = (len(spec.bands), grid.height, grid.width)
        self.shape = plane if ndim == 3 else (len(spec.groups), *plane)
        self.dtype = spec.out_dtype

    def __reduce__(self) -> tuple[Any, ...]:
        return (MosaicBlocks, (self.spec, self.ndim))

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        if self.ndim == 3:
            return self._plane(0, *key)
        step_slice, *rest = key
        t0, t1, _ = step_slice.indices(self.shape[0])
        planes = [self._plane(t, *rest) for t in range(t0, t1)]
        if not planes:
            b, r, c = (len(range(*s.indices(n))) for s, n in zip(rest, self.shape[1:], strict=True))
            return np.empty((0, b, r, c), dtype=self.dtype)
        return np.stack(planes)

    def _plane(
        self, group: int, band_slice: slice, row_slice: slice, col_slice: slice
    ) -> np.ndarray:
        spec = self.spec
        b0, b1, _ = band_slice.indices(len(spec.bands))
        r0, r1, _ = row_slice.indices(spec.grid.height)
        c0, c1, _ = col_slice.indices(spec.grid.width)
        shape = (max(b1 - b0, 0), max(r1 - r0, 0), max(c1 - c0, 0))
        if 0 in shape:
            return np.empty(shape, dtype=self.dtype)
        window = (c0, r0, c1 - c0, r1 - r0)
        ids = spec.candidates(group, spec.grid.window_bounds(*window))
        if len(ids) == 0:
            return np.full(shape, spec.out_fill, dtype=self.dtype)
        return self._block(ids, spec.bands[b0:b1], window)

    def _block(self, ids: np.ndarray, bands: Sequence[int], window: Part) -> np.ndarray:
        """One chunk's mosaic (`masks.MaskedBlocks` masks it)."""
        return run_here(mosaic_block(self.spec, ids, bands, window), self.spec.loop)


async def mosaic_block(
    spec: MosaicSpec, scene_ids: np.ndarray, bands: Sequence[int], window: Part,
    clear: Callable[[int], Awaitable[np.ndarray | None]] | None = None,
) -> np.ndarray:
    """One output chunk: read scenes in priority batches, feed the method, stop when done.

    `clear` (masks, `daskcog.mosaics.masks`): a scene's clear pixels over the chunk, (y, x)
    bool; the scene's other pixels are invalid for the method (see `_read_clear`)."""
    method_class = spec.method_class
    order = [int(i) for i in (scene_ids[::-1] if method_class.reverse else scene_ids)]
    feeder = _Feeder(spec, order, (len(bands), window[3], window[2]), window)
    for batch in scene_batches(spec, order, window, method_class):
        if await _read_and_feed(spec, batch, bands, window, clear, feeder):
            break
    return await offload(feeder.result)


async def _read_and_feed(
    spec: MosaicSpec, batch: list[int], bands: Sequence[int], window: Part,
    clear: Callable[[int], Awaitable[np.ndarray | None]] | None, feeder: _Feeder,
) -> bool:
    """Read a batch's scenes concurrently and feed each as soon as it and every scene before
    it in priority order are read; True when the method is done.

    Why not read the whole batch, then feed it: each scene's values and mask (a window of
    the chunk, up to 12 MiB for 2048 x 2048 uint16) then waited for the batch's slowest
    read, so a chunk task held the batch's scenes at once (issue 21: memory in flight in 8
    threads, and pages freed too late to serve the next scene's arrays). Fed in the same
    order, so the result is the same value for value. Errors as `asyncio.gather` gave them:
    with errors="raise" the first read to fail (in completion order; within one round, in
    priority order) raises, once the batch's other reads are cancelled and have finished
    (`cancel_and_wait`: left running, a read later handed its decode to a chunk thread
    that had gone, and stayed pending for ever holding its arrays). Cancelling a read
    cancels no one else's work: the opens and fetches other chunks join are not any one
    reader's (`ReaderCache.opened`, georeader's range cache). With errors="nodata" every
    read of the batch is awaited and its failure recorded, also after the method is done
    (then nothing more is fed)."""
    tasks = {asyncio.ensure_future(_read_clear(spec, i, bands, window, clear)): k
             for k, i in enumerate(batch)}
    pending = set(tasks)
    read: dict[int, Any] = {}
    next_k = 0
    done = False
    try:
        while pending:
            finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(finished, key=tasks.__getitem__):
                k = tasks[task]
                error = task.exception()
                if error is None:
                    read[k] = task.result()
                    continue
                if (
                    spec.errors != "nodata"
                    or isinstance(error, SceneMismatchError)
                    or not isinstance(error, Exception)
                ):
                    raise error
                failures.record(tokenize(spec), spec.scenes[batch[k]].url, window, error)
                read[k] = None
            ready: list[tuple[int, Any]] = []
            while next_k in read:
                got = read.pop(next_k)
                if got is not None:
                    ready.append((batch[next_k], got))
                next_k += 1
            if ready and not done:
                feed: Callable[[], bool] = functools.partial(feeder.feed, ready)
                done = await offload(feed)
    finally:  # reads are left only when raising (or cancelled): theirs are nobody's
        await cancel_and_wait(tasks)
    return done


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel those of `tasks` still running and wait until every one has finished; their
    errors are marked retrieved (they are nobody's: the caller raises its own, or was
    cancelled). A chunk's coroutine calls this before it ends, so nothing of the chunk
    runs on after it (asyncio.TaskGroup's rule, keeping `asyncio.gather`'s first error
    rather than an ExceptionGroup). A cancellation of the caller while it waits is kept
    and raised once they have finished; a read's cancellation is bounded (georeader
    shields a store call only for `SETTLE_SECONDS`)."""
    tasks = list(tasks)
    left = {task for task in tasks if not task.done()}
    for task in left:
        task.cancel()
    interrupted = False
    while left:
        try:
            _, left = await asyncio.wait(left)
        except asyncio.CancelledError:
            interrupted = True
    for task in tasks:
        if not task.cancelled():
            task.exception()
    if interrupted:
        raise asyncio.CancelledError


class _Feeder:
    """One chunk's method and its feeding, run in the chunk's Dask thread (`offload`), not
    on the I/O loop: the method's whole-chunk arrays, each scene's mask and cast and the
    method's numpy work are CPU, and on the loop they ran one chunk at a time for all of
    the process's chunk tasks (issue 21)."""

    def __init__(self, spec: MosaicSpec, order: Sequence[int], shape: tuple[int, int, int],
                 window: Part) -> None:
        self.spec = spec
        self.order = order
        self.shape = shape
        self.window = window
        self.value_dtype = np.dtype(spec.value_dtype)
        self._method: MosaicMethod | None = None
        self._kept: _KeptNodata | None = None

    @property
    def method(self) -> MosaicMethod:
        if self._method is None:
            spec = self.spec
            self._method = spec.method_class(self.shape, self.value_dtype, spec.fill)
            self._kept = _KeptNodata.for_scenes(spec, self.order, self.shape, self.value_dtype)
            self._by_fill = type(self._method) in (FirstMethod, LastMethod)
        return self._method

    _by_fill = False
    """The method feeds a `ByFill` scene in place (`FirstMethod.feed_by_fill`; exactly these
    classes: a subclass may change how it feeds)."""

    def feed(self, scenes: list[tuple[int, Any]]) -> bool:
        """Feed a batch's scenes in priority order; True when the method is done."""
        spec, window, value_dtype, method = self.spec, self.window, self.value_dtype, self.method
        kept = self._kept
        for i, (values, valid, part, clear_part) in scenes:
            if isinstance(valid, ByFill):
                if (
                    self._by_fill and kept is None and clear_part is None
                    and values.dtype == value_dtype
                ):
                    rows = slice(part[1] - window[1], part[1] - window[1] + part[3])
                    cols = slice(part[0] - window[0], part[0] - window[0] + part[2])
                    method.feed_by_fill(values, valid.fill, rows, cols)  # type: ignore[attr-defined]
                    if method.is_done:
                        self._done = True
                        return True
                    continue
                valid = valid.mask(values)
            if kept is not None:
                kept.feed(spec.scenes[i], values, valid, part, window)
            if clear_part is not None:  # after `kept`: a cloud is not the file's nodata
                valid = valid & clear_part
            if (
                values.dtype != value_dtype
                and values.dtype.kind == "f"
                and value_dtype.kind in "iub"
            ):
                values = np.where(valid, values, 0)  # no NaN into an integer cast
            values = values.astype(value_dtype, copy=False)
            if part == window:
                method.feed(values, valid)
            else:  # only the part the scene reaches: no whole-chunk padding, masks or copies
                rows = slice(part[1] - window[1], part[1] - window[1] + part[3])
                cols = slice(part[0] - window[0], part[0] - window[0] + part[2])
                method.feed_part(values, valid, rows, cols)
            if method.is_done:
                self._done = True
                return True
        return False

    _done = False

    def result(self) -> np.ndarray:
        result = np.asarray(self.method.result(), dtype=self.spec.out_dtype)
        if self._done or self._kept is None:
            return result
        return self._kept.apply(result)


async def _read_clear(
    spec: MosaicSpec, index: int, bands: Sequence[int], window: Part,
    clear: Callable[[int], Awaitable[np.ndarray | None]] | None,
) -> tuple[np.ndarray, np.ndarray | ByFill, Part, np.ndarray | None] | None:
    """`read_scene` and the scene's clear pixels on its part (None: all clear); a scene with
    no clear pixel in the chunk is not read."""
    keep = None if clear is None else await clear(index)
    if keep is not None and not keep.any():
        return None
    got = await read_scene(spec, index, bands, window, lazy_valid=True)
    if got is None:
        return None
    values, valid, part = got
    if keep is None:
        return values, valid, part, None
    rows = slice(part[1] - window[1], part[1] - window[1] + part[3])
    cols = slice(part[0] - window[0], part[0] - window[0] + part[2])
    return values, valid, part, keep[rows, cols]


class SourceScratch:
    """A few byte buffers lent for arrays used and dropped within one call (a warp's
    source window: decoded, warped, done). Why: each such window was a fresh array of up
    to ~9 MiB (2048 x 2048 uint16 plus the kernel's margin), and glibc hands blocks that
    large back to the system and faults them in again. At most `KEEP` buffers wait
    between calls (one per core: more threads than cores decode at once only by turns;
    a call finding none waiting gets a fresh one, dropped after): one per Dask thread
    raised a two-zone mosaic's peak by ~30 MiB. Registered ("daskcog.source-scratch":
    info, clear) and dropped when a load's pass is done (`scene_uses`), before Dask joins
    the chunks."""

    KEEP = max(1, os.cpu_count() or 1)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[np.ndarray] = []

    @contextlib.contextmanager
    def lend(self) -> Iterator[Callable[[int], np.ndarray]]:
        """`take(nbytes)` for the block: a buffer of at least `nbytes` (uint8), the same one
        for every call in the block; back in the pool after it."""
        held: list[np.ndarray] = []

        def take(nbytes: int) -> np.ndarray:
            if held and held[0].nbytes >= nbytes:
                return held[0]
            with self._lock:  # the smallest waiting buffer large enough, else a new one
                fits = [k for k, b in enumerate(self._free) if b.nbytes >= nbytes]
                found = (
                    self._free.pop(min(fits, key=lambda k: self._free[k].nbytes))
                    if fits else None
                )
            if found is None:
                found = np.empty(nbytes + nbytes // 8, np.uint8)  # room for a larger next
            held[:] = [found]
            return found

        try:
            yield take
        finally:
            if held:
                with self._lock:
                    self._free.append(held[0])
                    if len(self._free) > self.KEEP:  # keep the largest
                        sizes = [b.nbytes for b in self._free]
                        del self._free[sizes.index(min(sizes))]

    def info(self) -> dict[str, int]:
        with self._lock:
            return {"buffers": len(self._free), "bytes": sum(b.nbytes for b in self._free)}

    def clear(self) -> None:
        with self._lock:
            self._free = []

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._free = []


SOURCE_SCRATCH = SourceScratch()
process_state.register(
    "daskcog.source-scratch", info=SOURCE_SCRATCH.info, clear=SOURCE_SCRATCH.clear,
    after_fork=SOURCE_SCRATCH.after_fork,
)


@dataclass(frozen=True)
class ByFill:
    """A scene's valid pixels as "not `fill`" (integer values, `nodata_mask`'s rule), not yet
    worked out: the first / last-valid method works it out into its own scratch mask as it
    feeds the scene (`FirstMethod.feed_by_fill`), so a scene costs no mask array of its
    own (issue 21: a fresh whole-part bool array and two passes over it per scene)."""

    fill: int

    def mask(self, values: np.ndarray) -> np.ndarray:
        """The valid mask itself, for any other use."""
        return np.not_equal(values, self.fill)


class _KeptNodata:
    """The files' own nodata values, for scenes whose metadata states none
    (`Scene.keep_file_nodata`): their nodata pixels are invalid for the method (a later
    scene may fill them) and, where no scene has a valid value, the output holds the
    first such file's nodata value, as odc-stac returns it (MODIS -3000 stays -3000),
    rather than the fill value of pixels no scene reaches."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.values = np.zeros(shape, dtype=dtype)
        self.marked = np.zeros(shape, dtype=bool)
        self.valid = np.zeros(shape, dtype=bool)

    @classmethod
    def for_scenes(
        cls, spec: MosaicSpec, order: Sequence[int], shape: tuple[int, ...], dtype: np.dtype
    ) -> _KeptNodata | None:
        if spec.method_class.output_dtype(dtype) != dtype:  # count, mean, ...: no markers
            return None
        if not any(spec.scenes[i].keep_file_nodata for i in order):
            return None
        return cls(shape, dtype)

    def feed(
        self, scene: Any, values: np.ndarray, valid: np.ndarray, part: Part, window: Part
    ) -> None:
        rows = slice(part[1] - window[1], part[1] - window[1] + part[3])
        cols = slice(part[0] - window[0], part[0] - window[0] + part[2])
        if scene.keep_file_nodata:
            take = ~valid & ~self.marked[:, rows, cols]
            np.copyto(self.values[:, rows, cols], values, where=take, casting="unsafe")
            self.marked[:, rows, cols] |= take
        self.valid[:, rows, cols] |= valid

    def apply(self, result: np.ndarray) -> np.ndarray:
        put = self.marked & ~self.valid
        if put.any():
            result = np.array(result, copy=True)
            result[put] = self.values[put]
        return result


def scene_batches(
    spec: MosaicSpec,
    order: list[int],
    window: tuple[int, int, int, int],
    method_class: type[MosaicMethod],
) -> list[list[int]]:
    """Scenes in read order, cut into batches read concurrently.

    For methods that can finish early, a batch also ends after a scene whose
    footprint covers the whole chunk: it probably fills the chunk, so the next
    scenes wait for the `is_done` check instead of being read in parallel.
    """
    size = spec.batch_size or method_class.default_batch
    if not method_class.can_finish:
        return [order[i : i + size] for i in range(0, len(order), size)]
    left, bottom, right, top = spec.grid.window_bounds(*window)
    fp = spec.footprints
    batches: list[list[int]] = [[]]
    for i in order:
        batches[-1].append(i)
        covers = fp[i, 0] <= left and fp[i, 1] <= bottom and fp[i, 2] >= right and fp[i, 3] >= top
        if covers or len(batches[-1]) >= size:
            batches.append([])
    return [b for b in batches if b]


def _read_fill(
    fill: float, dtype: np.dtype, own: float | None = None, declared: float | None = None
) -> float | int:
    """The value a scene is read with: for a file with no nodata of its own whose catalogue
    states one (`declared`), that value, so its pixels stay missing whatever fill the
    output asks for (GDAL's warp takes it as source nodata; the reader has no file nodata
    to map); else the mosaic's fill if the scene's dtype can hold it, else the file's own
    nodata (a NaN fill over an integer file: only the file's nodata pixels are invalid,
    real zeros stay), else 0."""
    if own is None and declared is not None:
        return float(declared) if np.issubdtype(dtype, np.floating) else int(declared)
    if np.issubdtype(dtype, np.floating):
        return float(fill)
    if fits_dtype(fill, dtype):
        return int(fill)
    return int(own) if own is not None and fits_dtype(own, dtype) else 0


def _nodata_of(scene: Any, file_nodata: float | None, dtype: np.dtype) -> float | None:
    """The scene's nodata value: the file's, else its metadata's (`Scene.nodata`), when the
    scene's dtype can hold it (a NaN a STAC load declares for an integer asset read as
    float is the output's fill, not a value of the file); None: every pixel is data."""
    for value in (file_nodata, scene.nodata):
        if value is None:
            continue
        if np.issubdtype(dtype, np.floating) or fits_dtype(float(value), dtype):
            return float(value)
    return None


def _source_valid(assembled: Assembled) -> np.ndarray | None:
    """The read's valid pixels (band, y, x), or None when all are (no padding, no mask, no
    alpha: the common case, no mask allocated)."""
    height, width = assembled.values.shape[1:]
    if (
        assembled.inside == (0, 0, height, width)
        and assembled.invalid is None
        and not assembled.by_fill
    ):
        return None
    valid = assembled.valid
    return None if valid.all() else valid


async def read_scene(
    spec: MosaicSpec, index: int, bands: Sequence[int], window: Part, *,
    lazy_valid: bool = False,
) -> tuple[np.ndarray, Any, Part] | None:  # valid: an array, or a ByFill (see below)
    """One scene on the part of one chunk it reaches: (values in the scene's dtype, valid
    mask, the part as a window of the grid), or None when it has no pixel there. With
    `lazy_valid` (a chunk's own feed, `_read_clear`), an integer scene whose valid pixels
    are "not the fill value" gets a `ByFill` instead of the mask (the method works it out
    as it feeds, `_Feeder`); any other caller gets the mask.

    Valid depends on whether the scene has a nodata value (`_nodata_of`: the file's, else
    the metadata's, one the scene's dtype can hold):
    * it has one: valid is "not the read's fill value" (odc-stac's rule for mosaics), not
      the reader's GDAL mask (`Assembled.valid`): GDAL's warp takes the fill as nodata, so a
      warped pixel equal to the fill is invalid whatever the mask says; aligned reads follow
      the same rule so that both paths agree, and the mosaic tests fix it;
    * it has none: every pixel of the file is data, 0 included (GDAL's and odc-stac's
      reading), so no value can mark the invalid ones; valid comes from the read itself:
      the reader's GDAL mask for aligned reads (`Assembled.valid`: padding, an internal
      mask or alpha invalid), and for warped reads the pixels GDAL's warp writes, i.e.
      those mapping onto a valid source pixel (`warp.warp_valid`); NaN pixels of a float
      file are invalid too (odc-stac's rule for float pixels). A real 0 then stays a
      valid 0 in a float output, and a first-valid mosaic keeps it
      (tests/daskcog/test_mosaic_validity.py, tests/stac/test_no_nodata.py)."""
    scene = spec.scenes[index]
    opened = await CACHE.opened(scene.url, scene.options, retry=spec.retry)
    check_header(scene, opened, bands)
    level = choose_level(opened.levels, float(spec.level_res[index]))
    reader = AsyncGeoTIFFReader.from_opened(opened, overview_level=level, bands=bands)
    reader.retry = spec.retry
    grid = spec.grid
    own_nodata = None if opened.nodata is None else float(opened.nodata)
    declared = _nodata_of(scene, opened.nodata, reader.dtype)
    fill = _read_fill(spec.fill, reader.dtype, own_nodata, declared)
    if scene.keep_file_nodata and opened.nodata is not None:
        # the metadata states no nodata: the file's nodata pixels keep their value (and
        # are invalid), where the reader would otherwise turn them into the fill value
        own = float(opened.nodata)
        if np.issubdtype(reader.dtype, np.integer) and fits_dtype(own, reader.dtype):
            fill = int(own)
    by_fill = declared is not None
    planned = scene_source(spec, index, reader, window)
    if planned is None:
        return None
    source, part, scales, aligned = planned
    pending = await reader.fetch_window(source, fill_value=fill)
    if not aligned:
        src_transform = reader.transform @ Affine.translation(source.col_off, source.row_off)
        geometry = WarpGeometry(
            src_transform, scene.crs, grid.window_transform(part[0], part[1]), grid.crs,
            (part[3], part[2]), fill, spec.resampling, spec.warp_tolerance, scales,
        )
        reuse = (revisited(spec, index), grid_tag(scene))

    def decode() -> tuple[np.ndarray, np.ndarray | ByFill, Part]:
        if aligned:  # the values are the window itself: fed later, an array of its own
            return decode_into(None)
        # a warp's source window is the warp's input alone: decoded into a lent buffer,
        # free again once `warp` / `warp_valid` made the part's values
        with SOURCE_SCRATCH.lend() as scratch:
            return decode_into(scratch)

    def decode_into(
        scratch: Callable[[int], np.ndarray] | None,
    ) -> tuple[np.ndarray, np.ndarray | ByFill, Part]:
        assembled = pending.assembled(scratch=scratch)
        values = assembled.values
        if not by_fill:  # no nodata: validity from the read (and the warp), see above
            if aligned:
                valid = assembled.valid
            else:
                values, valid = warp_valid(values, _source_valid(assembled), geometry, *reuse)
        else:
            if not aligned:
                values = warp(values, geometry, *reuse)
            if lazy_valid and values.dtype.kind in "iu" and fits_dtype(fill, values.dtype):
                return values, ByFill(int(fill)), part  # `nodata_mask`'s integer rule, later
            invalid = nodata_mask(values, fill)
            valid = (
                np.ones(values.shape, dtype=bool) if invalid is None
                else np.logical_not(invalid, out=invalid)
            )
        # NaN is never a value (odc-stac's `nodata_mask`), whatever the nodata; a NaN fill
        # already marked them
        if values.dtype.kind == "f" and not (by_fill and np.isnan(fill)):
            valid &= ~np.isnan(values)
        return values, valid, part

    return await offload(decode)


SourcePlan = tuple[Window, Part, "tuple[float, float] | None", bool]
_sources: weakref.WeakKeyDictionary[MosaicSpec, dict[tuple[Any, ...], SourcePlan | None]] = (
    weakref.WeakKeyDictionary()
)
_SOURCES_PER_SPEC = 8192
"""Source plans kept per spec (a few hundred bytes each); past it the spec's are dropped."""
process_state.register(
    "daskcog.source-plans",
    info=lambda: {"specs": len(_sources), "plans": sum(len(p) for p in list(_sources.values()))},
    clear=_sources.clear,
)


def scene_source(
    spec: MosaicSpec, index: int, reader: AsyncGeoTIFFReader, window: Part
) -> SourcePlan | None:
    """`plan_source`, worked out once per spec, scene grid, level and chunk in this process:
    the read-ahead of a chunk and its own read ask the same, and so do a tile's revisits
    (the same grid on every date), so a time series of 6 dates asks ~6x less (issue 21: the
    I/O loop's Python). Keyed by every input `plan_source` reads (the scene's grid, the
    level's size, the chunk, the scene's footprint, level resolution and scales)."""
    scene = spec.scenes[index]
    key = (
        scene.crs, scene.transform, scene.width, scene.height, reader.width, reader.height,
        window, spec.footprints[index].tobytes(), float(spec.level_res[index]),
        spec.scales[index].tobytes(),
    )
    plans = _sources.get(spec)
    if plans is None:
        plans = _sources.setdefault(spec, {})
    try:
        return plans[key]
    except KeyError:
        pass
    found = plan_source(spec, index, reader, window)
    if len(plans) >= _SOURCES_PER_SPEC:
        plans.clear()
    plans[key] = found
    return found


def plan_source(
    spec: MosaicSpec, index: int, reader: AsyncGeoTIFFReader, window: Part
) -> SourcePlan | None:
    """What a read of one scene for one chunk fetches: (the level's source window, the part
    of the chunk it lands on, XSCALE / YSCALE, aligned), or None when the scene has no pixel
    there. Aligned: the scene is on the grid's CRS and resolution a whole number of pixels
    away, so the part is a plain window read; else the part is what the footprint reaches
    (GDAL visits every destination pixel it is given, inside the scene or not) and the
    source window covers it plus the kernel's reach. One place for `read_scene` and the
    read-ahead of the next chunks (`mosaics.read_ahead`), so both fetch the same tiles."""
    scene = spec.scenes[index]
    grid = spec.grid
    col_off, row_off, width, height = window
    offset = (
        aligned_offset(reader.transform, grid.affine) if same_crs(scene.crs, grid.crs) else None
    )
    if offset is not None:
        source = Window(col_off + offset[0], row_off + offset[1], width, height)
        inside = geo.clip_window(source, reader.width, reader.height)
        if inside is None:
            return None
        part = (
            col_off + int(inside.col_off - source.col_off),
            row_off + int(inside.row_off - source.row_off),
            int(inside.width),
            int(inside.height),
        )
        return inside, part, None, True
    reached = footprint_part(spec, index, window)
    if reached is None:
        return None
    scales = level_scales(spec, index, reader)
    found = source_window(spec, index, reader, grid.window_bounds(*reached), scales)
    if found is None:
        return None
    return found, reached, scales, False


T = TypeVar("T")
_DONE = object()


class ChunkThreadGoneError(GeoreaderError, RuntimeError):
    """`offload` from a coroutine whose chunk task has returned: no thread runs the job."""


class _Jobs:
    """The CPU jobs of one `run_here` call, run by its Dask thread until the chunk's
    coroutine is done; then closed: a job offered after that (a task the chunk started
    that outlived it) is refused, never queued where no one takes it (its waiter would
    stay pending for ever). Jobs left queued when the thread stops are failed."""

    __slots__ = ("_lock", "_open", "_queue")

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._open = True

    def put(self, job: tuple[Callable[[], Any], asyncio.Future[Any], Any]) -> bool:
        """Queue a job for the chunk's thread; False when that thread has stopped taking."""
        with self._lock:
            if not self._open:
                return False
            self._queue.put(job)
            return True

    def finish(self) -> None:
        """The chunk's coroutine is done (called on the loop): the thread stops after the
        jobs queued so far."""
        self._queue.put(_DONE)

    def get(self) -> Any:
        return self._queue.get()

    def close(self) -> None:
        """Take no more jobs and fail those still queued (the thread is leaving)."""
        with self._lock:
            self._open = False
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not _DONE:
                _, waiter, on_loop = job
                with contextlib.suppress(RuntimeError):  # a closed loop: no one waits
                    on_loop.call_soon_threadsafe(_settle, waiter, None, _gone())


def _gone() -> ChunkThreadGoneError:
    return ChunkThreadGoneError(
        "offload after its chunk task returned: no thread runs this job (a task the chunk "
        "started outlived it)"
    )


_calling_thread: contextvars.ContextVar[_Jobs | None] = contextvars.ContextVar(
    "daskcog_calling_thread", default=None
)


def run_here(coro: Coroutine[Any, Any, T], loop: LoopChoice = "io-thread") -> T:
    """Run a chunk's coroutine on the I/O loop, its CPU work (`offload`) in this thread.

    The one threading model of daskcog's chunk tasks (issue 20 item 5): the I/O loop only
    waits for bytes (headers, tiles, several scenes at once); decoding and warping run
    in the Dask thread that asked for the chunk, as `daskcog.open`'s chunks decode in
    theirs. Why this one: Dask's thread count is then the one knob of CPU parallelism
    (no second pool beside it, no hand-off per scene and step), and measured on the
    time series (bench_timeseries, interleaved, 11 runs each, load 3.7-5.8) it spent
    5-7 % less CPU than decoding in the loop's decode pool and warping in its default
    executor (2.95-3.26 s against 3.13-3.48 s of process CPU), at the same wall time
    within the noise (benchmarks/RESULTS.md, issue 21).

    The coroutine ends before this returns, every task it started with it
    (`cancel_and_wait`); this thread stops taking jobs when it leaves, also when
    interrupted (then the coroutine is cancelled), so no `offload` waits for it.
    Called from the loop itself it raises (it would block its own loop)."""
    jobs = _Jobs()

    async def hosted() -> T:
        _calling_thread.set(jobs)
        try:
            return await coro
        finally:
            jobs.finish()

    settings.apply_georeader()
    target = (worker_loop() if loop == "worker" else None) or io_loop()
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is target:
        coro.close()
        raise RuntimeError("run_here called from the loop it would block")
    future = asyncio.run_coroutine_threadsafe(hosted(), target)
    ended = False
    try:
        while (job := jobs.get()) is not _DONE:
            work, waiter, on_loop = job
            if waiter.cancelled():  # its coroutine was cancelled: nobody wants the result
                continue
            try:
                result = work()
            except BaseException as error:  # handed to the awaiting coroutine
                on_loop.call_soon_threadsafe(_settle, waiter, None, error)
            else:
                on_loop.call_soon_threadsafe(_settle, waiter, result, None)
        ended = True
    finally:
        jobs.close()
        if not ended:  # this thread was interrupted: end the coroutine too
            future.cancel()
    return future.result()


def _settle(waiter: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if waiter.done():
        return
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(result)


async def offload(work: Callable[[], T]) -> T:
    """Run `work` in the Dask thread that runs this chunk (`run_here`), else in a thread.

    Raises `ChunkThreadGoneError` (without running `work`) when that chunk task has
    returned: a task it started outlived it (none of daskcog's does: `cancel_and_wait`)."""
    jobs = _calling_thread.get()
    if jobs is None:
        return await asyncio.to_thread(work)
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[T] = loop.create_future()
    if not jobs.put((work, waiter, loop)):
        raise _gone()
    return await waiter
