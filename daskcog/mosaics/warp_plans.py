"""Warp once, reuse across revisits: nearest-neighbour warps as a cached gather.

Why: a time series revisits the same tiles. For one scene footprint and one output
chunk, the source CRS, the source window's transform and shape, the chunk part's
transform and shape, the resampling and GDAL's tolerance are the same on every date,
so GDAL's nearest-neighbour warp picks the same source pixel for every output pixel on
every date: only the values differ. This module asks GDAL once which source pixel that
is, and every later scene with the same key is a numpy gather.

How the mapping is made GDAL-exact: the source window's flat pixel indices (a float32
raster, exact below 2**24 pixels, destination nodata -1, a value no index takes) go
through the very same call as the data (`warp.gdal_warp`: same transforms, shapes,
tolerance, resampling, one thread). GDAL's nearest kernel copies the picked source
pixel, whatever its type, so the warped index raster holds, per output pixel, the index
of the pixel GDAL picks, or -1 where it writes nothing. A data pixel equal to the fill
value is copied as the fill (`gdal_warp` warps nearest with no source nodata; with the
fill as source nodata GDAL would skip it and leave the fill: the same value,
tests/daskcog/test_warp_nomask.py), which is exactly the value the gather copies. So
`gather(source, plan, fill)` equals GDAL's warp bit for bit
(tests/daskcog/test_warp_plans.py checks it across UTM zones, to geographic grids and
at half-pixel ties).

Two conditions keep it exact, both checked before a plan is used:
* GDAL cuts a warp into pieces when its working buffers pass its memory limit
  (64 MiB, rasterio's default), and its approximate transformer interpolates along the
  rows of each piece: the index raster (32 bits a pixel) and the data must both fit in
  one piece, so both warps see the same pieces (`fits_one_piece`);
* only nearest: bilinear / cubic weights could be cached too, but GDAL's kernels weigh
  valid neighbours only and renormalise near nodata and edges, so a cached weight table
  would differ from GDAL wherever a neighbour is nodata; those keep GDAL's warp.

The plans live in one per-process table (georeader's `process_state.Table`, bounded
by bytes, the `daskcog.warp-plan-bytes` setting), registered in the project's process-state
registry as "daskcog.warp-plans" (`info()` / `clear()`; a forked child starts empty).
A plan is made on a key's first use when the mosaic's spec shows the footprint more
than once (a revisit will reuse it), else on its second use in the process (a key seen
once in this process: loads that build a spec per chunk, e.g. stac-geoparquet).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from daskcog.runtime import process_state, settings

GDAL_WARP_MEMORY = 64 * 2**20
"""Bytes of working buffers above which GDAL cuts a warp into pieces (its default
`dfWarpMemoryLimit`, which rasterio's `reproject` keeps with `warp_mem_limit=0`)."""
SEEN_KEYS = 16_384
"""Keys remembered as seen once (a key is ~200 bytes): a second sight makes a plan."""


def fits_one_piece(
    src_shape: tuple[int, int], dst_shape: tuple[int, int], bits: int, bands: int
) -> bool:
    """Whether GDAL warps a raster of `bands` x `bits` per pixel from `src_shape` onto
    `dst_shape` in one piece: its working-buffer estimate (data plus a nodata bit per band,
    a validity bit per source pixel) stays under the memory limit, with a margin."""
    src = src_shape[0] * src_shape[1]
    dst = dst_shape[0] * dst_shape[1]
    used = ((bits * bands + bands + 1) * src + (bits * bands + bands) * dst) / 8
    return used < 0.9 * GDAL_WARP_MEMORY


@dataclass(frozen=True)
class Plan:
    """GDAL's nearest-neighbour picks for one key: `index` (y, x) int32 flat source indices,
    0 where GDAL writes nothing; `missing` the flat output positions GDAL writes nothing to
    (they take the fill value)."""

    index: np.ndarray
    missing: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.index.nbytes + self.missing.nbytes)

    @classmethod
    def from_picks(cls, picked: np.ndarray) -> Plan:
        """From a warped index raster: source indices, negative where GDAL wrote nothing."""
        missing = np.flatnonzero(picked < 0).astype(np.int32)
        index = picked.astype(np.int32)
        index.reshape(-1)[missing] = 0
        return cls(index, missing)


def gather(source: np.ndarray, plan: Plan, fill: float | int) -> np.ndarray:
    """(band, y, x) on the plan's grid: each output pixel the source pixel the plan names,
    the fill value where GDAL writes nothing (one take, no copy of the source)."""
    bands = source.shape[0]
    if bands == 1:  # a flat take: ~20 % faster than numpy's take along an axis
        out = source.reshape(-1).take(plan.index)[np.newaxis]
    else:
        out = np.take(source.reshape(bands, -1), plan.index, axis=1)
    if len(plan.missing):
        out.reshape(bands, -1)[:, plan.missing] = fill
    return out


class PlanTable(process_state.Table[Hashable, Plan]):
    """Per-process nearest-neighbour plans: key -> `Plan`.

    georeader's one LRU (`process_state.Table`, thread-safe) bounded by the plans' bytes,
    its bound read from dask.config at each use (a changed bound empties it), plus
    count-bounded tables of the keys seen once and of each tag's keys."""

    def __init__(self) -> None:
        super().__init__(None, lambda _: settings.get_int("warp-plan-bytes"), size=_plan_bytes)

    def _reset(self) -> None:
        super()._reset()
        self._seen: process_state.Table[Hashable, bool] = process_state.Table(
            None, lambda _: SEEN_KEYS
        )
        self._tagged: process_state.Table[Hashable, set[Hashable]] = process_state.Table(
            None, lambda _: SEEN_KEYS
        )  # tag (a scene grid) -> keys of its plans, for `forget`
        self._making: dict[Hashable, Future[Plan]] = {}
        """Plans being made now: another thread asking for the key waits for this one
        (one GDAL warp per key, where a step-interleaved order, e.g. a reduction over
        time, has the revisits of one chunk run at once)."""

    def plan(
        self, key: Hashable, revisited: bool, make: Callable[[], Plan],
        tag: Hashable | None = None,
    ) -> Plan | None:
        """The key's plan: cached, or made now when the key will be (or was) used again;
        None on a first sight of a key no revisit shares (the caller warps with GDAL).
        `tag`: what the plan belongs to (a scene grid), dropped with it by `forget`."""
        if self.check_bound() <= 0:
            return None
        found = self.get(key, count=False)  # a hit counts; a miss counts when a plan is made
        if found is not None:
            return found
        if not revisited and self._seen.get(key, count=False) is None:
            self._seen[key] = True
            return None
        with self._lock:
            pending = self._making.get(key)
            owner = pending is None
            if pending is None:
                pending = self._making[key] = Future()
        if not owner:
            try:
                joined = pending.result()  # made by another thread right now
            except Exception:  # noqa: BLE001 - this caller warps with GDAL and raises there
                return None
            with self._lock:
                self.hits += 1
            return joined
        try:
            found = self.get(key, count=False)  # made and stored since the first look
            made = make() if found is None else found  # outside any lock: GDAL's warp
        except BaseException as exc:
            with self._lock:
                self._making.pop(key, None)
            pending.set_exception(exc)
            raise
        if found is None:
            self[key] = made
            with self._lock:
                self.misses += 1
                if tag is not None and made.nbytes <= self.capacity:
                    keys = self._tagged.get(tag, count=False)
                    if keys is None:
                        keys = set()
                        self._tagged[tag] = keys
                    keys.add(key)
            self._seen.pop(key)
        with self._lock:
            self._making.pop(key, None)
        pending.set_result(made)
        return made

    def forget(self, tag: Hashable) -> int:
        """Drop the plans made with `tag` (no chunk of this process will read that grid
        again: `scene_uses`); returns how many."""
        with self._lock:
            keys = self._tagged.pop(tag)
            dropped = 0
            for key in keys or ():
                if self._data.pop(key, None) is not None:
                    dropped += 1
            return dropped

    def clear(self) -> None:
        super().clear()
        self._seen.clear()
        self._tagged.clear()

    def info(self) -> dict[str, Any]:  # type: ignore[override]
        return {
            "plans": len(self._data),
            "bytes": int(self._data.currsize),
            "maxbytes": max(self.capacity, 0),
            "seen-once": len(self._seen),
            "hits": self.hits,
            "made": self.misses,
        }


def _plan_bytes(plan: Plan) -> int:
    return plan.nbytes


PLANS = PlanTable()
process_state.register(
    "daskcog.warp-plans", info=PLANS.info, clear=PLANS.clear, after_fork=PLANS._reset
)
