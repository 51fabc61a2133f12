"""Masks from a quality band: which pixels of a scene are clear, read once per item and chunk.

A `Mask` names the asset that holds a quality band and the rule that makes a pixel clear:

* `drop=[...]`: classes to drop (Sentinel-2's SCL: `drop=[0, 1, 3, 8, 9, 10]` drops no data,
  saturated, cloud shadow, cloud medium / high probability and cirrus);
* `keep=[...]`: the only classes kept (`keep=[4, 5, 6]`: vegetation, bare soil, water);
* `bits=[...]`: bit numbers (0 = least significant) that drop a pixel when any is set
  (Landsat's QA_PIXEL: `bits=[1, 2, 3, 4]` drops dilated cloud, cirrus, cloud, shadow).

Exactly one of the three: a rule that both drops and keeps classes says the same as one
`keep=`, and two masks (a list) combine the others. Pixels outside the mask's own scene, and
pixels its file marks as nodata, are not clear either: nothing says they are.

How a load applies masks (`daskcog.load(..., mask=...)`): the mask asset of every item is
read onto the output grid with nearest resampling, whatever `resampling=` says for the
data (a class number must not be averaged), by the same chunk task that reads the item's
data scenes: `ChunkClear` reads each item's masks once per chunk task, on first request,
and shares the result with every data asset of the item (`mosaic_block`'s `clear=` hook);
a scene with no clear pixel in the chunk is not read at all. Several masks combine: a pixel
is clear only where every mask says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from dask.base import tokenize

from daskcog.mosaics.chunk_task import (
    MosaicBlocks,
    Part,
    cancel_and_wait,
    mosaic_block,
    read_scene,
    run_here,
)
from daskcog.mosaics.spec import MosaicSpec
from georeader.errors import GeoreaderError
from georeader.geo import fits_dtype

__all__ = ["ChunkClear", "Mask", "MaskError", "MaskPlan", "MaskedBlocks", "Masking", "as_masks"]


class MaskError(GeoreaderError, ValueError):
    """A mask rule that cannot be applied (no rule, two rules, bits of a float band, ...)."""


def _numbers(name: str, values: Any, *, low: int | None = None, high: int | None = None
             ) -> tuple[int, ...] | None:
    if values is None:
        return None
    if isinstance(values, int | np.integer) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise TypeError(f"Mask({name}=...) takes a list of integers, not {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise TypeError(f"Mask({name}=...) takes integers; got {v!r}")
        if (low is not None and v < low) or (high is not None and v > high):
            raise MaskError(f"Mask({name}=...): {int(v)} is outside {low}..{high}")
        out.append(int(v))
    if not out:
        raise MaskError(f"Mask({name}=[]) names nothing: give at least one value")
    return tuple(sorted(set(out)))


@dataclass(frozen=True)
class Mask:
    """A quality band and the rule that keeps its clear pixels (see the module docstring).

    `daskcog.Mask("scl", drop=[0, 1, 3, 8, 9, 10])`, `Mask("qa_pixel", bits=[1, 2, 3, 4])`,
    `Mask("scl", keep=[4, 5, 6])`; `band=` picks the band of a multi-band asset (1-based).
    A frozen value: hashable, picklable, with a deterministic Dask token."""

    asset: str
    drop: tuple[int, ...] | None = None
    keep: tuple[int, ...] | None = None
    bits: tuple[int, ...] | None = None
    band: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.asset, str) or not self.asset:
            raise TypeError(f"Mask(asset): the asset key of the quality band, not {self.asset!r}")
        if isinstance(self.band, bool) or not isinstance(self.band, int) or self.band < 1:
            raise TypeError(f"Mask(band=): a 1-based band number, not {self.band!r}")
        drop = _numbers("drop", self.drop)
        keep = _numbers("keep", self.keep)
        bits = _numbers("bits", self.bits, low=0, high=63)
        given = [n for n, v in (("drop", drop), ("keep", keep), ("bits", bits)) if v is not None]
        if len(given) != 1:
            raise MaskError(
                f"Mask({self.asset!r}) takes exactly one of drop=, keep=, bits= (got "
                f"{', '.join(given) or 'none'}); combine rules with a list of masks"
            )
        object.__setattr__(self, "drop", drop)
        object.__setattr__(self, "keep", keep)
        object.__setattr__(self, "bits", bits)

    def check_dtype(self, dtype: Any, where: str) -> None:
        """MaskError when the rule cannot apply to the band's data type (`where` names it)."""
        kind = np.dtype(dtype).kind
        if kind not in "iub" and self.bits is not None:
            raise MaskError(f"{where}: Mask(bits=...) needs an integer band, not {dtype}")
        if kind == "c":
            raise MaskError(f"{where}: a mask band of complex numbers cannot hold classes")

    def clear(self, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """True where the pixel is clear: valid in the mask's read and passing the rule."""
        if self.drop is not None:
            return valid & ~np.isin(values, self.drop)
        if self.keep is not None:
            return valid & np.isin(values, self.keep)
        flags = sum(1 << b for b in self.bits or ())
        return valid & ((values.astype(np.uint64, copy=False) & np.uint64(flags)) == 0)

    def read_fill(self, dtype: Any) -> float | int:
        """The fill value of the mask's read (pixels outside its scene, its file's nodata):
        a value the rule rejects, so no clear pixel is mistaken for a missing one."""
        dt = np.dtype(dtype)
        if self.drop is not None:
            candidates: Iterable[int] = self.drop
        elif self.bits is not None:
            candidates = (1 << b for b in self.bits)
        else:
            keep = set(self.keep or ())
            start = int(np.iinfo(dt).min) if dt.kind in "iu" else 0
            candidates = (v for v in range(start, start + len(keep) + 1) if v not in keep)
        for value in candidates:
            if fits_dtype(value, dt):
                return value
        return float("nan") if dt.kind == "f" else 0

    def __dask_tokenize__(self) -> Any:
        return ("daskcog.Mask", self.asset, self.drop, self.keep, self.bits, self.band)


def as_masks(mask: Any) -> tuple[Mask, ...]:
    """`mask=` as a tuple of Masks (None: none); TypeError for anything else."""
    if mask is None:
        return ()
    masks = [mask] if isinstance(mask, Mask) else mask
    if isinstance(masks, str | bytes | dict) or not isinstance(masks, Iterable):
        raise TypeError(f"mask= takes a daskcog.Mask or a list of them, not {mask!r}")
    masks = list(masks)
    bad = [m for m in masks if not isinstance(m, Mask)]
    if bad:
        raise TypeError(f"mask= takes daskcog.Mask values; got {bad[0]!r}")
    return tuple(masks)


@dataclass(frozen=True, eq=False)
class MaskPlan:
    """One mask of a load: its rule, a spec over the mask asset's scenes (nearest, the read
    fill the rule rejects) and, per item, the index of its mask scene."""

    rule: Mask
    spec: MosaicSpec
    scene_of_item: np.ndarray
    """(items,) index into `spec.scenes` of each item's mask scene (-1: none)."""

    def __dask_tokenize__(self) -> Any:
        return ("daskcog.MaskPlan", self.rule, tokenize(self.spec), self.scene_of_item.tobytes())


ClearFn = Callable[[int], Awaitable[np.ndarray | None]]
"""A data scene's index -> its clear pixels over the chunk ((y, x) bool), or None for all."""


@dataclass(frozen=True, eq=False)
class Masking:
    """What one asset's mosaic of a chunk needs to be masked: the load's mask plans (one
    tuple shared by every asset of the load, or of a stac-geoparquet step) and the item of
    each of the asset's scenes."""

    plans: tuple[MaskPlan, ...]
    scene_items: np.ndarray

    def __dask_tokenize__(self) -> Any:
        return ("daskcog.Masking", tuple(tokenize(p) for p in self.plans),
                self.scene_items.tobytes())


class ChunkClear:
    """The masks of one chunk task: each item's clear pixels, read on first request (the
    masks of one item concurrently) and shared by every data asset of the item."""

    def __init__(self, window: Part) -> None:
        self.window = window
        self._items: dict[tuple[int, int], asyncio.Future[np.ndarray]] = {}

    def hook(self, masking: Masking | None) -> ClearFn | None:
        """The `clear=` hook of one asset's `mosaic_block` (None without masks)."""
        if masking is None:
            return None

        async def clear(index: int) -> np.ndarray:
            return await self.item(masking.plans, int(masking.scene_items[index]))
        return clear

    def item(self, plans: tuple[MaskPlan, ...], item: int) -> asyncio.Future[np.ndarray]:
        key = (id(plans), item)  # `plans` lives as long as the chunk task's jobs
        found = self._items.get(key)
        if found is None:
            found = self._items[key] = asyncio.ensure_future(self._read(plans, item))
        return found

    async def close(self) -> None:
        """Cancel the mask reads still running (a chunk task that failed) and wait for them
        to end: none is left pending on the loop when the task's coroutines are gone."""
        await cancel_and_wait(self._items.values())

    async def _read(self, plans: tuple[MaskPlan, ...], item: int) -> np.ndarray:
        col_off, row_off, width, height = self.window
        reads = await asyncio.gather(*(
            read_scene(p.spec, int(p.scene_of_item[item]), (p.rule.band,), self.window)
            for p in plans
        ))
        clear = np.ones((height, width), dtype=bool)
        for plan, got in zip(plans, reads, strict=True):
            if got is None:  # the mask's scene has no pixel in this chunk: nothing is clear
                return np.zeros((height, width), dtype=bool)
            values, valid, (c0, r0, w, h) = got
            part = np.zeros((height, width), dtype=bool)
            part[r0 - row_off : r0 - row_off + h, c0 - col_off : c0 - col_off + w] = (
                plan.rule.clear(values[0], valid[0])
            )
            clear &= part
        return clear


class MaskedBlocks(MosaicBlocks):
    """`MosaicBlocks` of `daskcog.mosaic` / `daskcog.stack` with masks (`mask_sources=`):
    each chunk's scenes masked by their own quality files (a scene is its own item)."""

    def __init__(self, spec: MosaicSpec, ndim: int, masking: Masking) -> None:
        super().__init__(spec, ndim)
        self.masking = masking

    def __reduce__(self) -> tuple[Any, ...]:
        return (MaskedBlocks, (self.spec, self.ndim, self.masking))

    def _block(self, ids: np.ndarray, bands: Any, window: Part) -> np.ndarray:
        return run_here(self._masked(ids, bands, window), self.spec.loop)

    async def _masked(self, ids: np.ndarray, bands: Any, window: Part) -> np.ndarray:
        clear = ChunkClear(window)
        try:
            return await mosaic_block(self.spec, ids, bands, window, clear.hook(self.masking))
        finally:
            await clear.close()
