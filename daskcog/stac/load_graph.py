"""The graph of a STAC load: its plain-value spec, the grid, and the chunk task.

Shared by in-memory items (`load.py`) and stac-geoparquet files
(`geoparquet/parquet_load.py`): both hand `make_stack` a spec with `grid`, `steps`,
`band_map`, `fills`, `rescale`, `out_dtype`, `loop` and `jobs(step, b0, b1,
bounds)`; the graph is one `da.from_array` layer over `StacBlocks`, one task
per (step, y, x) chunk with all its bands, built in constant time.

A chunk task (`StacBlocks.__getitem__`) asks the spec for the mosaics the chunk
needs (per asset, the scenes of its step that overlap it) and runs the mosaic
engine's `mosaic_block` for all of them at once on the process's I/O loop:
headers come from the per-process reader cache and are checked against the
metadata (`check_header`), scenes are read concurrently and fused with
`method`, first/last stopping early.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from dask.array.core import normalize_chunks
from dask.base import tokenize

from daskcog.mosaics import grouping, scene_uses
from daskcog.mosaics import read_ahead as mosaic_read_ahead
from daskcog.mosaics.chunk_task import cancel_and_wait, mosaic_block, run_here
from daskcog.mosaics.grid import Placement
from daskcog.mosaics.masks import ChunkClear, Masking, MaskPlan
from daskcog.mosaics.mosaic import MosaicSpec
from daskcog.mosaics.scenes import Bounds
from daskcog.mosaics.warp import grid_tag
from daskcog.reading import chunking
from daskcog.runtime import read_ahead
from daskcog.runtime.io_loop import LoopChoice
from daskcog.stac import output_grid
from daskcog.stac.items import bands as band_rules
from daskcog.stac.items.asset_scenes import undeclared_nodata
from daskcog.stac.items.item_dicts import ItemDict
from daskcog.stac.load_spec import Job, LoadSpec
from daskcog.stac.output_grid import GridRequest
from daskcog.stac.stac_stack import StacStack
from georeader.errors import WindowError

LOAD_CHUNK_BYTES = 8 * 2**20
"""'auto' chunks aim at this many bytes per (step, y, x) chunk, all bands."""
CHUNK_GRANULE = 256


@dataclass(frozen=True, eq=False)
class StacSpec:
    """What a chunk task needs: one mosaic spec per asset and the band map (plain values)."""

    assets: tuple[MosaicSpec, ...]
    band_map: tuple[tuple[int, int], ...]
    """Per output band: (index into `assets`, 1-based band number in that asset's files)."""
    out_dtype: str
    fills: tuple[float, ...]
    """Per output band: the value where no scene is valid."""
    rescale: tuple[tuple[float, float] | None, ...]
    """Per output band: (scale, offset) applied to valid pixels, or None."""
    loop: LoopChoice = "io-thread"
    scene_items: tuple[np.ndarray, ...] = ()
    """Per asset: the item index of each of its scenes (what masks are looked up by)."""
    masks: tuple[MaskPlan, ...] = ()
    """`mask=`: each mask's plan; a chunk task reads an item's masks once for all assets."""

    @property
    def grid(self) -> Any:
        return self.assets[0].grid


    @property
    def steps(self) -> int:
        return len(self.assets[0].groups)

    def runs(self, b0: int, b1: int) -> list[tuple[int, list[int], list[int]]]:
        return band_runs(self.band_map, b0, b1)

    def jobs(self, step: int, b0: int, b1: int, bounds: Bounds) -> list[Job]:
        """The mosaics one chunk of one step needs: (output positions, spec, scene ids,
        band numbers, masking) per asset with a scene overlapping `bounds`."""
        out: list[Job] = []
        for asset, positions, numbers in self.runs(b0, b1):
            mspec = self.assets[asset]
            ids = mspec.candidates(step, bounds)
            if len(ids):
                masking = Masking(self.masks, self.scene_items[asset]) if self.masks else None
                out.append((positions, mspec, ids, numbers, masking))
        return out

    def __dask_tokenize__(self) -> Any:
        return (
            "daskcog.StacSpec",
            tuple(tokenize(a) for a in self.assets),
            self.band_map,
            self.out_dtype,
            repr(self.fills),
            self.rescale,
            self.loop,
            tuple(i.tobytes() for i in self.scene_items) if self.masks else (),
            tuple(tokenize(m) for m in self.masks),
        )


def band_runs(
    band_map: Sequence[tuple[int, int]], b0: int, b1: int
) -> list[tuple[int, list[int], list[int]]]:
    """Output bands b0..b1 as runs sharing an asset: (asset, output positions, band numbers)."""
    out: list[tuple[int, list[int], list[int]]] = []
    for pos in range(b0, b1):
        asset, number = band_map[pos]
        if out and out[-1][0] == asset:
            out[-1][1].append(pos - b0)
            out[-1][2].append(number)
        else:
            out.append((asset, [pos - b0], [number]))
    return out


def plan_grid(
    request: GridRequest,
    scenes: Sequence[Any],
    grids: Sequence[Any],
    weights: Sequence[int] | None = None,
) -> tuple[Placement, Any]:
    """The output grid (odc-stac's rules, built with odc-geo: `output_grid`) and every
    scene's placement on it; returns (placement, GeoBox)."""
    return output_grid.plan(request, scenes, grids, weights)


def grid_lon(geobox: Any) -> float:
    """The longitude of the output grid's centre: odc-stac's solar day uses it for every item
    (a footprint's own centre is wrong for tiles that cross the antimeridian)."""
    ((lon, _),) = geobox.extent.centroid.to_crs("epsg:4326").points
    return float(lon)


def make_spec(
    specs: list[MosaicSpec],
    band_map: tuple[tuple[int, int], ...],
    out_bands: list[band_rules.Band],
    dtype: Any,
    rescale: bool,
    loop: LoopChoice,
) -> StacSpec:
    scaling: list[tuple[float, float] | None] = []
    for b in out_bands:
        scale = 1.0 if b.info.scale is None else b.info.scale
        offset = 0.0 if b.info.offset is None else b.info.offset
        scaling.append((scale, offset) if rescale else None)
    if dtype is not None:
        out = np.dtype(dtype)
    elif rescale:
        out = np.result_type(np.float32, *(s.out_dtype for s in specs))
    else:
        out = np.result_type(*(s.out_dtype for s in specs))
    fills = tuple(
        math.nan if rescale and out.kind == "f" else float(specs[a].out_fill) for a, _ in band_map
    )
    return StacSpec(tuple(specs), band_map, str(out), fills, tuple(scaling), loop)


def make_stack(
    spec: LoadSpec,
    chunks: Any,
    out_bands: list[band_rules.Band],
    steps: grouping.Grouping,
    items: list[ItemDict] | None,
    groupby: Any,
    properties: Callable[[], dict[str, list[Any]]] | None = None,
    with_properties: Sequence[Any] = (),
    property_rows: Callable[[str], list[list[Any]]] | None = None,
) -> StacStack:
    tchunks, plane = load_chunks(spec, chunks)
    normalised = (tchunks, *plane)
    name = f"daskcog-load-{tokenize(spec, normalised)}"
    data = da.from_array(
        StacBlocks(
            spec, read_ahead.ChunkGrid.from_chunks(0, 0, plane[1], plane[2]), name,
            tuple(plane[0]),
        ),
        chunks=normalised,
        name=name,
        lock=False,
        asarray=False,
        fancy=False,
        meta=np.empty((0, 0, 0, 0), dtype=spec.out_dtype),
    )
    fills = set(spec.fills)
    common = fills.pop() if len(fills) == 1 else None
    if any(undeclared_nodata(a.scenes) for a in spec.assets):
        common = None  # no nodata stated for an integer asset (scenes.declare_nodata)
    return StacStack(
        data,
        spec=spec,
        band_names=[b.name for b in out_bands],
        steps=steps,
        items=items,
        groupby=groupby,
        nodata=common,
        properties=properties,
        with_properties=with_properties,
        property_rows=property_rows,
    )


def load_chunks(
    spec: LoadSpec, chunks: Any
) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """(time chunks, (band, y, x) chunks); 'auto' aims at LOAD_CHUNK_BYTES per chunk."""
    time: Any = "auto"
    if isinstance(chunks, dict):
        chunks = dict(chunks)
        time = chunks.pop("time", "auto")
    grid = spec.grid
    auto = chunks is None or isinstance(chunks, str) or (
        isinstance(chunks, dict) and (len(chunks) < 2 or "auto" in chunks.values())
    )
    return time_chunks(time, spec.steps), chunking.tile_chunks(
        chunks,
        window=(0, 0, grid.width, grid.height),
        count=len(spec.band_map),
        tile=(CHUNK_GRANULE, CHUNK_GRANULE) if auto else (1, 1),
        itemsize=np.dtype(spec.out_dtype).itemsize,
        target_bytes=LOAD_CHUNK_BYTES,
    )


def time_chunks(value: Any, steps: int) -> tuple[int, ...]:
    """The time axis' chunks by Dask's rules: -1 or None all steps in one chunk (how a
    series is loaded ready for a reduction over time), a positive int that size, a tuple
    of sizes those chunks. "auto" (and no "time" key) is one step per chunk, odc-stac's
    default: a chunk task mosaics each of its steps on its own, so more steps per chunk
    only make fewer, larger tasks. Anything else is refused here, by name, not turned into
    another size."""
    if isinstance(value, str) and value == "auto":
        value = 1
    if isinstance(value, tuple) and value:  # the chunks' own sizes: each a whole number > 0
        sizes = [chunking.whole_number(v) for v in value]
        if None in sizes:
            raise WindowError(f"chunks['time'] sizes must be whole numbers above 0; got {value!r}")
        value = tuple(sizes)
    else:
        value = chunking.checked_size(value, "time", byte_size=False)
    try:
        return tuple(int(c) for c in normalize_chunks((value,), shape=(steps,))[0])
    except ValueError as exc:
        raise WindowError(f"chunks['time']={value!r} for {steps} steps: {exc}") from None


# -- chunk tasks ----------------------------------------------------------------------
class StacBlocks:
    """Array-like (step, band, y, x) that `da.from_array` slices: one call per chunk."""

    def __init__(
        self, spec: LoadSpec, chunk_grid: read_ahead.ChunkGrid | None = None, name: str = "",
        band_chunks: tuple[int, ...] = (),
    ) -> None:
        self.spec = spec
        self.chunk_grid = chunk_grid
        """The (y, x) chunk grid, for read-ahead (`mosaics.read_ahead`); None: none."""
        self.name = name
        self.band_chunks = band_chunks
        """The band axis' chunks, for the files' use counts (`mosaics.scene_uses`); (): none."""
        grid = spec.grid
        self.shape = (spec.steps, len(spec.band_map), grid.height, grid.width)
        self.dtype = np.dtype(spec.out_dtype)
        self.ndim = 4

    def __reduce__(self) -> tuple[Any, ...]:
        return (StacBlocks, (self.spec, self.chunk_grid, self.name, self.band_chunks))

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        spec = self.spec
        (t0, t1, _), (b0, b1, _), (r0, r1, _), (c0, c1, _) = (
            s.indices(n) for s, n in zip(key, self.shape, strict=True)
        )
        shape = (max(t1 - t0, 0), max(b1 - b0, 0), max(r1 - r0, 0), max(c1 - c0, 0))
        if 0 in shape:
            return np.empty(shape, dtype=self.dtype)
        window = (c0, r0, c1 - c0, r1 - r0)
        bounds = spec.grid.window_bounds(*window)
        jobs = [
            (t - t0, *job) for t in range(t0, t1) for job in spec.jobs(t, b0, b1, bounds)
        ]
        results: list[np.ndarray] = []
        if jobs:
            ahead = None
            # in-memory items only: their scene lookup is a vectorised footprint test; a
            # stac-geoparquet spec filters a table per chunk (ms each), not on the I/O loop
            if self.chunk_grid is not None and t1 - t0 == 1 and isinstance(spec, StacSpec):
                ahead = functools.partial(
                    mosaic_read_ahead.start, functools.partial(_scene_jobs, spec, b0, b1),
                    self.chunk_grid, self.shape[0], f"{self.name}-{b0}-{b1}", t0, window,
                    spec.grid,
                )
            results = run_here(_gather(jobs, window, ahead), spec.loop)
        out = self._assemble(shape, b0, jobs, results)
        self._count_down(t0, t1, b0, b1, window, jobs)
        return out

    def _assemble(
        self, shape: tuple[int, ...], b0: int, jobs: list[Any], results: list[np.ndarray]
    ) -> np.ndarray:
        """The chunk from its mosaics: each (step, band) the mosaic's result in the output
        dtype, the fill value where no scene is; a chunk of one step and one band is that
        result itself (no second whole-chunk array to fill and copy into)."""
        spec = self.spec
        if shape[:2] == (1, 1) and len(jobs) == 1 and len(jobs[0][1]) == 1:
            mspec = jobs[0][2]
            only = _finish(results[0][0], mspec, spec.rescale[b0], self.dtype, spec.fills[b0])
            base = only if only.base is None else only.base
            if (
                only.shape == shape[2:] and only.dtype == self.dtype
                and only.flags.c_contiguous and only.flags.writeable
                and getattr(base, "nbytes", -1) == only.nbytes  # holds nothing more
            ):
                return only.reshape(shape)
        out = np.empty(shape, dtype=self.dtype)
        written = {(t, pos) for t, positions, *_ in jobs for pos in positions}
        for t in range(shape[0]):
            for pos in range(shape[1]):
                if (t, pos) not in written:
                    out[t, pos] = spec.fills[b0 + pos]
        for (t, positions, mspec, *_), values in zip(jobs, results, strict=True):
            for k, pos in enumerate(positions):
                out[t, pos] = _finish(
                    values[k], mspec, spec.rescale[b0 + pos], self.dtype, spec.fills[b0 + pos]
                )
        return out

    def _count_down(
        self, t0: int, t1: int, b0: int, b1: int, window: tuple[int, int, int, int],
        jobs: list[Any],
    ) -> None:
        """This chunk's files are read: count them down, the last reader releases their
        tiles from georeader's caches (`mosaics.scene_uses`). Whole chunks of an in-memory
        load only (a sliced window is not a chunk the counts know)."""
        grid, spec = self.chunk_grid, self.spec
        if grid is None or not self.band_chunks or not isinstance(spec, StacSpec):
            return
        if not scene_uses.enabled():
            return
        here = grid.index(window[1], window[0], window[3], window[2])
        starts = np.cumsum((0, *self.band_chunks))
        band = int(np.searchsorted(starts, b0))
        if here is None or band >= len(self.band_chunks) or starts[band] != b0 or (
            starts[band + 1] != b1
        ):
            return
        ny, nx = grid.shape
        per_step = len(self.band_chunks) * ny * nx
        spatial = (band * ny + here[0]) * nx + here[1]
        build = functools.partial(_use_counts, spec, grid, self.band_chunks)
        for t in range(t0, t1):
            files = [
                mspec.scenes[int(i)].url
                for step, _, mspec, ids, *_ in jobs if step == t - t0 for i in ids
            ]
            scene_uses.USES.done(self.name, t * per_step + spatial, files, build)


async def _gather(
    jobs: list[tuple[int, list[int], MosaicSpec, np.ndarray, list[int], Masking | None]],
    window: tuple[int, int, int, int],
    ahead: Callable[[], None] | None = None,
) -> list[np.ndarray]:
    """Every (step, asset) mosaic of one chunk at once: their reads overlap on the loop; with
    masks, each item's mask is read once and shared by its assets (`ChunkClear`). `ahead`
    starts read-ahead of the next chunks once this one's reads are scheduled."""
    clear = ChunkClear(window)
    blocks = [
        asyncio.ensure_future(mosaic_block(mspec, ids, numbers, window, clear.hook(masking)))
        for _, _, mspec, ids, numbers, masking in jobs
    ]
    try:
        if ahead is not None:  # after this chunk's reads have started (call_soon is FIFO)
            asyncio.get_running_loop().call_soon(_quietly, ahead)
        return await asyncio.gather(*blocks)
    finally:  # a mosaic failed: the others end before the chunk raises (`cancel_and_wait`)
        await cancel_and_wait(blocks)
        await clear.close()


def _quietly(ahead: Callable[[], None]) -> None:
    """Run a read-ahead start: its errors are nobody's (the chunks' own reads raise theirs)."""
    with contextlib.suppress(Exception):
        ahead()


def _use_counts(
    spec: StacSpec, grid: read_ahead.ChunkGrid, band_chunks: tuple[int, ...]
) -> scene_uses.Built | None:
    """For `scene_uses`: each file's chunk tasks (every step, band chunk and (y, x) chunk),
    its store options and grid, and the chunk count; None when too large to work out."""
    ny, nx = grid.shape
    if ny * nx * sum(len(a.scenes) for a in spec.assets) > scene_uses.MAX_WORK:
        return None
    bounds = [spec.grid.window_bounds(*grid.window(i, j)) for i in range(ny) for j in range(nx)]
    per_asset = [0] * len(spec.assets)  # band chunks that read each asset
    b0 = 0
    for size in band_chunks:
        for asset, _, _ in spec.runs(b0, b0 + size):
            per_asset[asset] += 1
        b0 += size
    counts: dict[str, int] = {}
    options: dict[str, Any] = {}
    grids: dict[str, Any] = {}
    for asset, mspec in enumerate(spec.assets):
        if not per_asset[asset]:
            continue
        reads = mspec.reads_per_scene(bounds) * per_asset[asset]
        for i in np.flatnonzero(reads):
            scene = mspec.scenes[int(i)]
            counts[scene.url] = counts.get(scene.url, 0) + int(reads[i])
            options.setdefault(scene.url, scene.options)
            grids.setdefault(scene.url, grid_tag(scene))
    return counts, options, grids, spec.steps * len(band_chunks) * ny * nx


def _scene_jobs(
    spec: LoadSpec, b0: int, b1: int, step: int, bounds: Bounds
) -> list[tuple[MosaicSpec, np.ndarray, list[int]]]:
    """What a chunk of `step` over `bounds` reads, for read-ahead: (spec, scene ids, bands)."""
    return [(mspec, ids, numbers) for _, mspec, ids, numbers, _ in spec.jobs(step, b0, b1, bounds)]


def _finish(
    values: np.ndarray,
    mspec: MosaicSpec,
    scaling: tuple[float, float] | None,
    dtype: np.dtype,
    fill: float,
) -> np.ndarray:
    """One band of one step in the output dtype, scale / offset applied to valid pixels."""
    if scaling is None and mspec.out_fill == fill:
        return values.astype(dtype, copy=False)
    src_fill = mspec.out_fill
    valid = ~(np.isnan(values) if isinstance(src_fill, float) and math.isnan(src_fill)
              else values == src_fill)
    if scaling is not None:
        scale, offset = scaling
        result = values.astype(dtype) * dtype.type(scale) + dtype.type(offset)
    else:
        result = values.astype(dtype)
    return np.where(valid, result, dtype.type(fill))
