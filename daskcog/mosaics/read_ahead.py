"""Read-ahead across a STAC load's chunk tasks: fetch the tiles the next chunks will read.

Why: a load's chunk task holds its Dask thread through at least one round trip for its
tiles before it decodes, so 96 chunks on 8 threads wait ~12 round trips in sequence
(issue 21). The I/O loop has no such limit: while this chunk's requests are in flight,
it can put the next chunks' tile requests in flight too, into georeader's range cache,
where the next chunk's own read finds them (or joins them while still in flight).

Which chunks come next: for a computed (time, band, y, x) cube Dask's order walks the
chunks of one step, then the next step's, spatially local (`dask.order` runs
`from_array`'s independent chunks in reverse key order). So each chunk asks for its
neighbours on the same step's chunk grid (`runtime.read_ahead.ChunkGrid.neighbours`,
nearest first) and then the same window on the adjacent steps, each chunk at most once
per process (`runtime.read_ahead.REQUESTED`), bounded by dask.config's
`daskcog.readahead-bytes` (read-ahead bytes no read has used yet; 0 turns it off) as
`daskcog.open`'s read-ahead is. Scenes whose header is not in the reader cache yet are
opened for it only if `daskcog.mosaic-readahead` is "open" ("headers": only cached
headers; "off": none). Fire-and-forget: nothing here blocks the chunk that starts it,
and a failed read-ahead is forgotten (the chunk's own read fetches again and raises).
Local files are left out (their reads do not go through the range cache).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rasterio.windows import Window

from daskcog.mosaics.chunk_task import scene_batches, scene_source
from daskcog.runtime import read_ahead, settings
from daskcog.runtime.reader_cache import CACHE
from georeader import AsyncGeoTIFFReader, choose_level, prefetch_window

Jobs = Callable[
    [int, tuple[float, float, float, float]], Sequence[tuple[Any, np.ndarray, Sequence[int]]]
]
"""(step, bounds) -> (mosaic spec, scene ids, band numbers) per asset the chunk reads."""

_tasks: set[asyncio.Future[Any]] = set()  # read-ahead in flight (kept from the GC)


def mode() -> str:
    """dask.config's `daskcog.mosaic-readahead`: "off", "headers" or "open"."""
    return str(settings.get("mosaic-readahead"))


def start(
    jobs: Jobs, grid: read_ahead.ChunkGrid, steps: int, array: str, step: int,
    window: tuple[int, int, int, int], output_grid: Any,
) -> None:
    """On the I/O loop, once the chunk (`step`, `window`)'s own reads are started: claim it
    and start read-ahead of the chunks likely next (see the module's docstring)."""
    how = mode()
    budget = read_ahead.budget_bytes()
    if how == "off" or budget <= 0:
        return
    if read_ahead.RANGE_CACHE.unused_prefetch_bytes >= budget:
        return
    col_off, row_off, width, height = window
    here = grid.index(row_off, col_off, height, width)
    if here is None:
        return
    rows = grid.shape[0]
    read_ahead.REQUESTED.claim(array, [(step * rows + here[0], here[1])])
    wanted = [(step * rows + i, j) for i, j in grid.neighbours(*here)]
    for t in (step - 1, step + 1):
        if 0 <= t < steps:
            wanted.append((t * rows + here[0], here[1]))
    for flat in read_ahead.REQUESTED.claim(array, wanted):
        t, i = divmod(flat[0], rows)
        target = grid.window(i, flat[1])
        part = (target[0], target[1], target[2], target[3])
        bounds = output_grid.window_bounds(*part)
        for mspec, ids, numbers in jobs(t, bounds):
            for index in _first_batch(mspec, ids, part):
                task = asyncio.ensure_future(
                    _scene(mspec, int(index), numbers, part, budget, how == "open")
                )
                _tasks.add(task)
                task.add_done_callback(_tasks.discard)


def _first_batch(spec: Any, ids: np.ndarray, window: tuple[int, int, int, int]) -> list[int]:
    """The scenes `mosaic_block` reads first: a method that can stop early (first, last)
    may never read the others, so they are not read ahead (no bytes nobody uses)."""
    method_class = spec.method_class
    order = [int(i) for i in (ids[::-1] if method_class.reverse else ids)]
    batches = scene_batches(spec, order, window, method_class)
    if not batches:
        return []
    return batches[0] if method_class.can_finish else order


async def _scene(
    spec: Any, index: int, bands: Sequence[int], window: tuple[int, int, int, int],
    budget: int, open_header: bool,
) -> bool:
    """Prefetch the tiles `chunk_task.read_scene` will read for this scene and chunk."""
    try:
        scene = spec.scenes[index]
        opened = CACHE.peek(scene.url, scene.options)
        if opened is None:
            if not open_header or scene.url.startswith("file:") or "://" not in scene.url:
                return False
            opened = await CACHE.opened(scene.url, scene.options, retry=spec.retry)
        if opened.location.is_local:
            return False
        level = choose_level(opened.levels, float(spec.level_res[index]))
        reader = AsyncGeoTIFFReader.from_opened(opened, overview_level=level, bands=bands)
        source = _source(spec, index, reader, window)
        if source is None:
            return False
        box = (int(source.col_off), int(source.row_off), int(source.width), int(source.height))
        return await prefetch_window(
            opened, opened.levels[level], box, budget=budget, retry=spec.retry
        )
    except Exception:  # noqa: BLE001 - the chunk's own read fetches again and raises
        return False


def _source(spec: Any, index: int, reader: Any, window: tuple[int, int, int, int]) -> Window | None:
    """The source window `read_scene` fetches for this scene on this chunk (the same rules:
    `chunk_task.scene_source`)."""
    planned = scene_source(spec, index, reader, window)
    if planned is None or math.isnan(float(planned[0].width)):
        return None
    return planned[0]
