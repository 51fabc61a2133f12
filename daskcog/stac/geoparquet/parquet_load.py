"""stac-geoparquet archives: a load that never holds the archive's items on the client.

Strategy (lazycogs's, with pyarrow as the engine; see benchmarks/RESULTS.md for
the pyarrow-vs-DuckDB measurement):

* Client: the band catalogue comes from the first rows; steps from the
  `datetime` / `bbox` / property columns, computed on Arrow and numpy arrays
  (`row_keys`), never as item objects. The grid comes from the *distinct*
  grids of the requested assets (proj:* columns, deduplicated with numpy):
  a few hundred Scenes for an archive of 100,000 items, and `grid.place` gives
  the same grid a load of the items themselves would.
* The graph carries the file's URL, the steps' keys and time ranges and the
  grid: plain values, the same size for 100 or 100,000 items.
* Chunk task (`ParquetSpec.jobs`): one vectorised filter of the process's Arrow
  table of the file (`parquet_file.columns_table`, decoded once per process)
  for the chunk's lon/lat box and the step's time range, the step's key checked
  on the rows it returns, only those rows turned into items and Scenes
  (`scenes.asset_tables`), then the mosaic engine as for in-memory items.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from daskcog.mosaics import grouping
from daskcog.mosaics.crs import crs_text, transform_bounds
from daskcog.mosaics.grid import Grid, place
from daskcog.mosaics.grouping import ROW_NUMBER, Step, plan_steps, row_keys, row_times
from daskcog.mosaics.masks import Mask, Masking, MaskPlan
from daskcog.mosaics.mosaic import MosaicSpec, build_spec
from daskcog.mosaics.scenes import Bounds
from daskcog.runtime import credentials as creds
from daskcog.runtime.io_loop import LoopChoice
from daskcog.runtime.reader_cache import default_retry
from daskcog.runtime.tokens import callable_token
from daskcog.stac.geoparquet.parquet_file import columns_table, parquet_file, row_items
from daskcog.stac.geoparquet.parquet_plan import distinct_scenes, step_properties, step_rows
from daskcog.stac.items import bands as band_rules
from daskcog.stac.items.asset_scenes import (
    asset_tables,
    declare_nodata,
    declared_scenes,
    mask_facts,
    mask_plans,
)
from daskcog.stac.items.item_dicts import ItemDict, StacError, StacItemError
from daskcog.stac.load_graph import band_runs, grid_lon, make_spec, make_stack, plan_grid
from daskcog.stac.load_spec import Job
from daskcog.stac.options import LoadOptions, check_asset_options
from georeader.io import check_store_options

_LONLAT_MARGIN = 1e-6
_HEAD_ROWS = 256
"""Rows read on the client for the band catalogue."""


# -- the plan and the chunk tasks --------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ParquetSpec:
    """A load over a stac-geoparquet file: plain values only, no item in it."""

    url: str
    file_options: tuple[tuple[str, Any], ...]
    grid: Grid
    groupby: Any
    step_list: tuple[Step, ...]
    facts: tuple[tuple[str, band_rules.BandInfo], ...]
    """Per asset key read: its facts (dtype, nodata, band count)."""
    band_map: tuple[tuple[int, int], ...]
    templates: tuple[MosaicSpec, ...]
    """Per asset: a spec with the load's options and no scene (fill, dtypes)."""
    out_dtype: str
    fills: tuple[float, ...]
    rescale: tuple[tuple[float, float] | None, ...]
    options: tuple[tuple[str, Any], ...]
    """build_spec keywords (method, nodata, resampling, dtype, ...)."""
    store_options: tuple[tuple[str, Any], ...]
    patch_url: Callable[[str], str] | None
    loop: LoopChoice = "io-thread"
    lon: float | None = None
    """The output grid's longitude (odc-stac's solar day for every row)."""
    credentials: str | None = None
    """Name of the secret store options (keys, tokens), resolved in the process that reads."""
    file_credentials: str | None = None
    """The same for the parquet file's own options."""
    masks: tuple[Mask, ...] = ()
    """`mask=`: read per chunk from the same rows as the data (`asset_scenes.mask_plans`)."""
    mask_facts: tuple[tuple[str, band_rules.BandInfo], ...] = ()
    """Per mask asset key: its facts (the band a mask reads)."""
    resampling: tuple[str, ...] = ()
    """Per asset (in `facts` order): its resampling, from a name or odc-stac's per-band dict."""
    stac_cfg: str | None = None
    """odc-stac's `stac_cfg` as canonical JSON, applied to each row as to items."""

    def _with_secrets(self, pairs: tuple[tuple[str, Any], ...], name: str | None) -> dict[str, Any]:
        return creds.with_secrets(pairs, name, self.url)

    @property
    def steps(self) -> int:
        return len(self.step_list)

    @property
    def assets(self) -> tuple[MosaicSpec, ...]:
        return self.templates

    def runs(self, b0: int, b1: int) -> list[tuple[int, list[int], list[int]]]:
        return band_runs(self.band_map, b0, b1)

    def rows(self, step: int, bounds: Bounds) -> Any:
        """The file's rows of one step whose bbox meets `bounds` (one filtered scan)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        west, south, east, north = transform_bounds(bounds, self.grid.crs, crs_text("EPSG:4326"))
        s = self.step_list[step]
        stamp = pa.timestamp("us", tz="UTC")
        file_options = tuple(
            sorted(self._with_secrets(self.file_options, self.file_credentials).items())
        )
        read = tuple(k for k, _ in self.facts)
        read += tuple(k for k, _ in self.mask_facts if k not in read)
        table = columns_table(self.url, file_options, read)
        when = pc.field("datetime")
        if "start_datetime" in table.column_names:  # datetime null: the range's start (row_times)
            when = pc.coalesce(when, pc.field("start_datetime"))
        expr = (when >= pa.scalar(s.first, stamp)) & (when <= pa.scalar(s.last, stamp))
        if all(math.isfinite(v) for v in (west, south, east, north)):
            m = _LONLAT_MARGIN
            # across the antimeridian a chunk's or an item's west exceeds its east (or its
            # east exceeds 180): both unwrapped eastwards, compared a turn either side
            east = east + 360 if west > east else east
            xmin, xmax = pc.field("bbox", "xmin"), pc.field("bbox", "xmax")
            xmax = pc.if_else(xmin > xmax, pc.add(xmax, 360.0), xmax)
            lon = None
            for turn in (-360.0, 0.0, 360.0):
                one = (xmin <= east + turn + m) & (xmax >= west + turn - m)
                lon = one if lon is None else lon | one
            expr = expr & lon & (
                (pc.field("bbox", "ymin") <= north + m) & (pc.field("bbox", "ymax") >= south - m)
            )
        table = table.filter(expr)
        keys = row_keys(self.groupby, table, self.lon)
        keep = np.asarray([k == s.key for k in keys], dtype=bool)
        return table.filter(keep).drop_columns([ROW_NUMBER])

    def jobs(self, step: int, b0: int, b1: int, bounds: Bounds) -> list[Job]:
        table = self.rows(step, bounds)
        if table.num_rows == 0:
            return []
        order = np.lexsort((
            table.column("id").to_numpy(zero_copy_only=False).astype(str), row_times(table)
        ))
        table = table.take(order)
        # the table's assets struct holds the asked assets only
        items: list[ItemDict] = list(row_items(table))
        if self.stac_cfg is not None:
            items, _ = band_rules.apply_stac_cfg(items, json.loads(self.stac_cfg))
        facts = dict(self.facts)
        store_options = self._with_secrets(self.store_options, self.credentials)
        tables = asset_tables(items, facts, patch_url=self.patch_url,
                              retry=dict(self.options).get("retry"), **store_options)
        opts = dict(self.options)
        tables = declare_nodata(tables, facts, nodata=opts["nodata"], dtype=opts["dtype"],
                                rescale=any(r is not None for r in self.rescale))
        plans: tuple[MaskPlan, ...] = ()
        if self.masks:  # the rows' masks, shared by this step's assets
            with_data = sorted({int(i) for t in tables for i in t.items})
            plans = mask_plans(self.masks, items, dict(self.mask_facts), with_data, self.grid,
                               SimpleNamespace(**opts, patch_url=self.patch_url),
                               **store_options)
        out: list[Job] = []
        for asset, positions, numbers in self.runs(b0, b1):
            scenes = tables[asset].scenes
            if not scenes:
                continue
            placement = place(scenes, grid=self.grid)
            mspec = build_spec(scenes, placement, groups=(np.arange(len(scenes)),),
                               bands=sorted(set(numbers)),
                               **{**opts, "resampling": self.resampling[asset]})
            ids = mspec.candidates(0, bounds)
            if len(ids):
                masking = Masking(plans, tables[asset].items) if plans else None
                out.append((positions, mspec, ids, numbers, masking))
        return out

    def __dask_tokenize__(self) -> Any:
        # callables by dask's deterministic token, never their repr (a memory address)
        groupby = (callable_token(self.groupby, "groupby") if callable(self.groupby)
                   else repr(self.groupby))
        return ("daskcog.ParquetSpec", self.url, repr(self.file_options), self.grid,
                groupby, repr(self.step_list), repr(self.facts), self.band_map,
                self.out_dtype, repr(self.fills), self.rescale, repr(self.options),
                repr(self.store_options), callable_token(self.patch_url, "patch_url"),
                self.loop, self.lon, self.masks, repr(self.mask_facts), self.resampling,
                self.stac_cfg)


# -- entry point (called by daskcog.load) ---------------------------------------------------
def load_geoparquet(
    url: Any,
    options: LoadOptions,
    *,
    parquet_options: dict[str, Any] | None = None,
    keywords: frozenset[str] = frozenset(),
    **store_options: Any,
) -> Any:
    """`daskcog.load` of a stac-geoparquet file (`options.use_proj` is for item inputs only)."""
    o = options
    bands, dtype, patch_url, groupby, loop = o.bands, o.dtype, o.patch_url, o.groupby, o.loop
    if callable(groupby):
        raise StacError("groupby callables need item objects; a stac-geoparquet load takes a "
                        "string groupby")
    if o.preserve_original_order:
        raise StacError("preserve_original_order needs item objects; a stac-geoparquet load "
                        "sorts a step's items by (datetime, id)")
    for_file = parquet_options if parquet_options is not None else store_options
    check_store_options(str(url), for_file, entry_keywords=keywords | {"parquet_options"})
    file_options = tuple(sorted(for_file.items()))
    pf = parquet_file(str(url), file_options)
    names = pf.schema_arrow.names
    # the first rows only (a fragment's head decodes its whole row group), no geometry
    head = next(pf.iter_batches(batch_size=_HEAD_ROWS, use_threads=False,
                                columns=[c for c in names if c not in ("geometry", "links")]),
                None)
    head_items: list[ItemDict] = list(row_items(head)) if head is not None else []
    del head
    if o.stac_cfg is not None and _ignores_proj(o.stac_cfg):
        raise StacError(f"{url}: stac_cfg ignore_proj asks for headers, and a stac-geoparquet "
                        "load reads none on the client; load the items instead")
    head_items, cfg_aliases = band_rules.apply_stac_cfg(head_items, o.stac_cfg)
    catalogue = band_rules.catalogue(head_items)
    out_bands = band_rules.resolve(bands, catalogue, cfg_aliases)
    facts = {b.info.asset: b.info for b in out_bands}
    check_asset_options(
        (str(a["href"]) for it in head_items for k in facts
         if isinstance(a := (it.get("assets") or {}).get(k), dict) and a.get("href")),
        store_options, patch_url, keywords,
    )
    missing = [k for k, info in facts.items() if info.dtype is None]
    if missing:
        raise StacError(f"{url}: assets {missing} state no raster:bands data_type; give dtype=")
    masks_facts = mask_facts(o.masks, catalogue, str(url))
    untyped = [k for k, info in masks_facts.items() if info.dtype is None]
    if untyped:
        raise StacError(f"{url}: mask assets {untyped} state no raster:bands data_type: a "
                        "stac-geoparquet load reads no header on the client; load the items")
    for m in o.masks:
        m.check_dtype(masks_facts[m.asset].dtype, f"{url}: mask asset {m.asset!r}")
    if o.masks:
        _check_mask_assets(pf, list(facts), list(masks_facts), str(url))

    finest: list[tuple[Any, int]] = []
    scenes = distinct_scenes(pf, facts, str(url), patch_url, store_options, finest)
    placement, geobox = plan_grid(o.grid, scenes, [g for g, _ in finest], [n for _, n in finest])
    lon = grid_lon(geobox)
    # only the columns the steps need (the bbox only for a solar day without the grid's
    # longitude), released as soon as the steps are planned: the stack keeps none
    core = [c for c in ("id", "datetime", "start_datetime") if c in names]
    if isinstance(groupby, str) and groupby in names and groupby not in core:
        core.append(groupby)
    if groupby == "solar_day" and lon is None and "bbox" in names:
        core.append("bbox")
    steps, first_times, groups = plan_steps(
        groupby, pf.read(columns=core, use_threads=False), lon
    )
    per_asset = band_rules.resampling_per_asset(o.resampling, out_bands)
    spec_options: dict[str, Any] = {
        "method": o.method, "nodata": o.nodata, "dtype": None,
        "batch_size": o.batch_size, "warp_tolerance": o.warp_tolerance, "loop": loop,
        "errors": o.errors, "retry": o.retry or default_retry(),
    }
    templates = []
    for key, info in facts.items():
        own = declared_scenes([s for s in scenes if s.label.endswith(f"asset {key!r}")], info,
                              nodata=o.nodata, dtype=dtype, rescale=o.rescale)
        part = place(own[:1], grid=placement.grid)
        numbers = [b.info.index for b in out_bands if b.info.asset == key]
        templates.append(build_spec(own[:1], part, groups=(np.arange(0),), bands=numbers,
                                    resampling=per_asset[key],
                                    **{**spec_options, "dtype": dtype or info.dtype}))
    # secrets stay out of the graph: the spec holds public options and credential names
    public_store, store_credentials = creds.keep_out_of_graph(dict(store_options), None, str(url))
    public_file, file_credentials = creds.keep_out_of_graph(dict(file_options), None, str(url))
    asset_index = {key: k for k, key in enumerate(facts)}
    band_map = tuple((asset_index[b.info.asset], b.info.index) for b in out_bands)
    base = make_spec(templates, band_map, out_bands, dtype, o.rescale, loop)
    spec = ParquetSpec(
        url=str(url), grid=placement.grid, groupby=groupby,
        step_list=tuple(steps), facts=tuple(facts.items()), band_map=band_map,
        templates=tuple(templates), out_dtype=base.out_dtype, fills=base.fills,
        rescale=base.rescale, options=tuple(sorted({**spec_options, "dtype": dtype}.items(),
                                                   key=lambda kv: kv[0])),
        store_options=tuple(sorted(public_store.items())), patch_url=patch_url, loop=loop,
        lon=lon, credentials=store_credentials, file_options=tuple(sorted(public_file.items())),
        file_credentials=file_credentials, masks=o.masks, mask_facts=tuple(masks_facts.items()),
        resampling=tuple(per_asset[key] for key in facts),
        stac_cfg=None if o.stac_cfg is None else json.dumps(o.stac_cfg, sort_keys=True,
                                                            default=_json_scalar),
    )
    grouping_ = grouping.Grouping(keys=tuple(s.key for s in steps),
                                  members=tuple(() for _ in steps), times=tuple(first_times))
    return make_stack(spec, o.chunks, out_bands, grouping_, None, groupby,
                      properties=lambda: step_properties(pf, groups),
                      with_properties=o.with_properties,
                      property_rows=lambda key: step_rows(pf, groups, key))




def _json_scalar(value: Any) -> Any:
    """numpy scalars in a `stac_cfg` as the Python numbers they hold (the spec keeps JSON)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"stac_cfg holds a {type(value).__name__}; give numbers and strings")


def _ignores_proj(cfg: Any) -> bool:
    """Whether any collection's entry of odc-stac's `stac_cfg` sets `ignore_proj`."""
    entries = [cfg] if any(k in cfg for k in ("assets", "aliases", "ignore_proj")) else list(
        cfg.values()
    )
    return any(bool(entry.get("ignore_proj", False)) for entry in entries)


def _check_mask_assets(pf: Any, data: list[str], masks: list[str], url: str) -> None:
    """StacItemError (at call time, from the href columns alone) naming the first row that
    has a data asset and lacks a mask asset."""
    import pyarrow.compute as pc

    from daskcog.stac.geoparquet.parquet_file import leaf_paths

    columns = leaf_paths(pf.schema_arrow, [f"assets.{k}.href" for k in {*data, *masks}])
    def has(assets: Any, key: str) -> np.ndarray:
        href = pc.struct_field(pc.struct_field(assets, key), "href")
        return ~href.is_null().to_numpy(zero_copy_only=False)

    for batch in pf.iter_batches(batch_size=65536, use_threads=False, columns=[*columns, "id"]):
        assets = batch.column("assets")
        with_data = np.logical_or.reduce([has(assets, k) for k in data])
        for key in masks:
            lacking = np.flatnonzero(with_data & ~has(assets, key))
            if len(lacking):
                raise StacItemError(
                    f"{url}: item {batch.column('id')[int(lacking[0])].as_py()} has no asset "
                    f"{key!r} for its mask: drop such items or the mask"
                )
