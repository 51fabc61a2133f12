"""explain(): what a compute of a load would touch, per step and chunk, with no pixel read.

From the plan alone (the scene footprints on the grid and the chunking) it
counts, for each (step, y, x) chunk, the items and files whose footprint
overlaps it, and estimates the bytes and requests: a scene's pixels inside
the chunk at the resolution it will be read at (uncompressed, before rounding
to tiles), and one request per 512-row band of tiles the read spans (reads are
coalesced per tile row). For first / last these are upper bounds: a chunk stops
reading once it is full. Headers are counted once per distinct file (the reader
cache opens each once per worker process).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from daskcog.mosaics.methods import HoldingMethod
from daskcog.mosaics.scenes import nearest_turn, wrap_period
from daskcog.stac.load_spec import LoadSpec

if TYPE_CHECKING:
    import dask.array as da


class Explainable(Protocol):
    """What `explain` reads of a `StacStack` (named here so this module needs not import
    the StacStack class, which imports this one for its `explain` method)."""

    @property
    def spec(self) -> LoadSpec: ...

    @property
    def data(self) -> da.Array: ...

ASSUMED_TILE = 512


@dataclass(frozen=True)
class ChunkPlan:
    step: int
    row: int
    """Chunk index along y."""
    col: int
    """Chunk index along x."""
    window: tuple[int, int, int, int]
    """(col_off, row_off, width, height) on the output grid."""
    items: int
    scenes: int
    bytes: int
    requests: int
    held: int = 0
    """Bytes of scene values a median / quantile holds for this chunk at most (the valid
    values of every scene reaching it, in the value dtype); 0 for streaming methods."""


@dataclass(frozen=True)
class LoadPlan:
    chunks: tuple[ChunkPlan, ...]
    files: int
    """Distinct files a full compute opens (one header each per worker process)."""
    tasks: int

    @property
    def bytes(self) -> int:
        return sum(c.bytes for c in self.chunks)

    @property
    def requests(self) -> int:
        return sum(c.requests for c in self.chunks)

    @property
    def held_bytes(self) -> int:
        """The most scene values one chunk task holds (median / quantiles), in bytes."""
        return max((c.held for c in self.chunks), default=0)

    def per_step(self) -> dict[int, dict[str, int]]:
        out: dict[int, dict[str, int]] = {}
        for c in self.chunks:
            row = out.setdefault(c.step, {"chunks": 0, "empty": 0, "scenes": 0, "bytes": 0,
                                          "requests": 0})
            row["chunks"] += 1
            row["empty"] += c.scenes == 0
            row["scenes"] += c.scenes
            row["bytes"] += c.bytes
            row["requests"] += c.requests
        return out

    def __str__(self) -> str:
        busiest = max((c.scenes for c in self.chunks), default=0)
        lines = [
            (f"{self.tasks:,} tasks; {len(self.chunks):,} (step, y, x) chunks, "
             f"{sum(c.scenes == 0 for c in self.chunks):,} with no scene"),
            f"{self.files:,} files (header requests: at least one per file per worker)",
            f"at most {self.requests:,} data requests, ~{self.bytes / 2**20:,.1f} MiB uncompressed",
            f"busiest chunk: {busiest} scene reads",
        ]
        if self.held_bytes:
            lines.append(
                f"median / quantiles hold at most ~{self.held_bytes / 2**20:,.1f} MiB of scene "
                "values per chunk task (the scenes reaching the busiest chunk, in their value "
                "dtype; mean, count, min, max stream)"
            )
        for step, row in self.per_step().items():
            lines.append(
                f"  step {step}: {row['scenes']} scene reads over {row['chunks']} chunks, "
                f"{row['requests']} requests, ~{row['bytes'] / 2**20:,.1f} MiB"
            )
        return "\n".join(lines)


def explain(stack: Explainable) -> LoadPlan:
    spec = stack.spec
    grid = spec.grid
    _, _, ychunks, xchunks = stack.data.chunks
    rows = np.cumsum((0, *ychunks))
    cols = np.cumsum((0, *xchunks))
    files: set[str] = set()
    plans: list[ChunkPlan] = []
    for t in range(spec.steps):
        for r in range(len(ychunks)):
            for c in range(len(xchunks)):
                window = (int(cols[c]), int(rows[r]), int(xchunks[c]), int(ychunks[r]))
                bounds = grid.window_bounds(*window)
                items: set[str] = set()
                masked: dict[int, tuple[Any, set[int]]] = {}  # per plans: items read
                scenes = nbytes = requests = held = 0
                jobs = spec.jobs(t, 0, len(spec.band_map), bounds)
                for positions, mspec, ids, _, masking in jobs:
                    nbands = len(positions)
                    holds = issubclass(mspec.method_class, HoldingMethod)
                    value_size = np.dtype(mspec.value_dtype).itemsize
                    if masking is not None:  # each item's mask: read once per chunk
                        seen = masked.setdefault(id(masking.plans), (masking.plans, set()))[1]
                        seen.update(int(v) for v in masking.scene_items[ids])
                    for i in ids:
                        scene = mspec.scenes[int(i)]
                        files.add(scene.url)
                        items.add(scene.label.partition(" asset ")[0])
                        cost, reqs, out_w, out_h = _scene_cost(mspec, int(i), bounds, window)
                        nbytes += cost * nbands
                        requests += reqs
                        scenes += 1
                        if holds:
                            held += min(window[2], out_w) * min(window[3], out_h) * nbands * (
                                value_size)
                for mask_plans, seen in masked.values():
                    for mp in mask_plans:
                        for item in sorted(seen):
                            j = int(mp.scene_of_item[item])
                            files.add(mp.spec.scenes[j].url)
                            cost, reqs, _, _ = _scene_cost(mp.spec, j, bounds, window)
                            nbytes += cost
                            requests += reqs
                            scenes += 1
                plans.append(ChunkPlan(t, r, c, window, len(items), scenes, nbytes, requests,
                                       held))
    return LoadPlan(tuple(plans), len(files), stack.data.npartitions)


def _scene_cost(
    mspec: Any, i: int, bounds: tuple[float, float, float, float],
    window: tuple[int, int, int, int],
) -> tuple[int, int, int, int]:
    """(uncompressed bytes of one band, requests, width, height on the output grid) of scene
    `i`'s read for a chunk: its pixels inside the chunk at the resolution it is read at."""
    grid = mspec.grid
    gres = grid.res
    left, bottom, right, top = bounds
    f0, f1, f2, f3 = (float(v) for v in mspec.footprints[i])
    fp = nearest_turn(  # a footprint across 180 degrees: the chunk's side
        (f0, f1, f2, f3), (left, bottom, right, top), wrap_period(grid.crs)
    )
    w = max(0.0, min(right, fp[2]) - max(left, fp[0]))
    h = max(0.0, min(top, fp[3]) - max(bottom, fp[1]))
    scale = mspec.scales[i]
    size = min(gres)
    if np.isfinite(scale).all() and float(np.min(scale)) > 0:
        size = max(size, min(gres) * float(np.min(scale)))
    px_w, px_h = math.ceil(w / size), math.ceil(h / size)
    itemsize = np.dtype(mspec.scenes[i].dtype).itemsize
    out_w, out_h = math.ceil(w / abs(gres[0])), math.ceil(h / abs(gres[1]))
    return px_w * px_h * itemsize, max(1, math.ceil(px_h / ASSUMED_TILE)), out_w, out_h
