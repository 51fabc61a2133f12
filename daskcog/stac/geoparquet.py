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
* Chunk task (`ParquetSpec.jobs`): one filtered scan of the file for the
  chunk's lon/lat box and the step's time range (row groups whose statistics
  cannot match are skipped), the step's key checked on the rows it returns,
  the rows turned into items and Scenes (`scenes.asset_tables`), then the
  mosaic engine as for in-memory items. The file handle is cached per process.
"""

from __future__ import annotations

import io
import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from daskcog.mosaics.footprints import Bounds, Scene, crs_text, transform_bounds
from daskcog.mosaics.grid import Grid, place
from daskcog.mosaics.mosaic import MosaicSpec, build_spec
from daskcog.reading.io_loop import LoopChoice
from daskcog.stac import bands as band_rules
from daskcog.stac import grouping
from daskcog.stac.items import StacError
from daskcog.stac.projection import proj_grid
from daskcog.stac.scenes import asset_tables

_CORE = frozenset({"type", "stac_version", "stac_extensions", "id", "bbox", "geometry",
                   "assets", "links", "collection"})
_LONLAT_MARGIN = 1e-6
_HEAD_ROWS = 256
"""Rows read on the client for the band catalogue."""


# -- the file, opened once per process ------------------------------------------------
_files: dict[tuple[str, str, int], Any] = {}
_files_lock = threading.Lock()
_MAX_FILES = 64


def fragment(url: str, options: tuple[tuple[str, Any], ...]) -> Any:
    """A pyarrow Parquet fragment over the file (local, or any obstore store), cached per
    process and thread (the footer is read once per thread)."""
    import pyarrow as pa
    import pyarrow.dataset as pds

    # one handle per thread: a Python file object under pyarrow is not safe to share
    key = (url, json.dumps(options, default=repr), threading.get_ident())
    with _files_lock:
        found = _files.get(key)
    if found is not None:
        return found
    from georeader.store import build_store, parse_location

    location = parse_location(url)
    if location.url.startswith("file://"):
        source: Any = location.url[len("file://"):]
    else:
        import obstore

        store = build_store(location, **dict(options))
        source = pa.PythonFile(_Readable(obstore.open_reader(store, location.key)), mode="r")
    if isinstance(source, str):
        import pyarrow.fs as pfs

        frag = pds.ParquetFileFormat().make_fragment(source, filesystem=pfs.LocalFileSystem())
    else:
        frag = pds.ParquetFileFormat().make_fragment(source)
    with _files_lock:
        while len(_files) >= _MAX_FILES:  # bounded: threads and files come and go
            _files.pop(next(iter(_files)))
        return _files.setdefault(key, frag)


class _Readable(io.RawIOBase):
    """obstore's ReadableFile (ranged GETs) with the file-object surface pyarrow expects."""

    def __init__(self, reader: Any) -> None:
        super().__init__()
        self._reader = reader

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return bytes(self._reader.read(size if size is not None and size >= 0 else None))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._reader.seek(offset, whence))

    def tell(self) -> int:
        return int(self._reader.tell())

    def size(self) -> int:
        return int(self._reader.size)


_tables: dict[tuple[str, str, tuple[str, ...]], Any] = {}
_MAX_TABLES = 4


def columns_table(url: str, options: tuple[tuple[str, Any], ...], assets: tuple[str, ...]) -> Any:
    """The columns a chunk task filters (all but geometry and links; the asset structs it
    reads), decoded once per process and kept as one Arrow table (no Python objects).

    Measured (benchmarks/bench_geoparquet.py): a scan of the file per chunk decodes every
    row group that may match, ~67 ms a chunk for 20,000 items in one row group; DuckDB's
    read_parquet ~14 ms; a filter of this cached table ~1-2 ms.
    """
    import pyarrow.compute as pc

    key = (url, json.dumps(options, default=repr), assets)
    with _files_lock:
        found = _tables.get(key)
    if found is not None:
        return found
    frag = fragment(url, options)
    names = frag.physical_schema.names
    wanted = {c: pc.field(c) for c in names if c not in ("geometry", "links", "assets")}
    for name in assets:
        wanted[f"asset:{name}"] = pc.field("assets", name)
    table = frag.to_table(columns=wanted).combine_chunks()
    with _files_lock:
        while len(_tables) >= _MAX_TABLES:
            _tables.pop(next(iter(_tables)))
        return _tables.setdefault(key, table)


def row_items(table: Any) -> list[dict[str, Any]]:
    """Rows of a stac-geoparquet table as STAC item dicts (properties un-flattened)."""
    items = []
    for row in table.to_pylist():
        bbox = row.get("bbox")
        if isinstance(bbox, dict):
            bbox = [bbox["xmin"], bbox["ymin"], bbox["xmax"], bbox["ymax"]]
        assets = {k: {f: v for f, v in a.items() if v is not None}
                  for k, a in (row.get("assets") or {}).items() if a is not None}
        props = {k: v for k, v in row.items() if k not in _CORE and v is not None}
        items.append({"type": "Feature", "id": row.get("id"), "bbox": bbox, "assets": assets,
                      "properties": props})
    return items


# -- group keys on Arrow columns -------------------------------------------------------
def _times(table: Any) -> np.ndarray:
    import pyarrow.compute as pc

    column = table.column("datetime")
    if "start_datetime" in table.column_names:
        column = pc.coalesce(column, table.column("start_datetime"))
    return column.cast("timestamp[us]").to_numpy(zero_copy_only=False).astype("datetime64[us]")


def row_keys(groupby: Any, table: Any) -> np.ndarray:
    """The group key of each row, computed on columns (odc-stac's rules, like `grouping`)."""
    if groupby is None or groupby == "id":
        return table.column("id").to_numpy(zero_copy_only=False).astype(str)
    if callable(groupby):
        raise StacError("groupby callables need item objects; a stac-geoparquet load takes a "
                        "string groupby")
    if groupby == "time":
        return _times(table)
    if groupby == "day":
        return _times(table).astype("datetime64[D]")
    if groupby == "month":
        return _times(table).astype("datetime64[M]")
    if groupby == "solar_day":
        bbox = table.column("bbox")
        lon = (_field(bbox, "xmin") + _field(bbox, "xmax")) / 2
        hours = np.trunc(lon / 15).astype("int64").astype("timedelta64[h]")
        return (_times(table) + hours).astype("datetime64[D]")
    if groupby not in table.column_names:
        raise StacError(f"groupby property {groupby!r} is not a column of the stac-geoparquet file")
    return table.column(groupby).to_numpy(zero_copy_only=False)


def _field(struct: Any, name: str) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.struct_field(struct, name).to_numpy(zero_copy_only=False).astype(np.float64)


@dataclass(frozen=True)
class Step:
    key: Any
    first: int
    """Earliest time of the step's rows, microseconds since the epoch."""
    last: int


def plan_steps(groupby: Any, table: Any) -> tuple[list[Step], list[np.datetime64]]:
    """Steps sorted by key; each with its rows' time range and its first item's time."""
    keys = row_keys(groupby, table)
    times = _times(table)
    ids = table.column("id").to_numpy(zero_copy_only=False).astype(str)
    present = np.array([not _missing(k) for k in keys]) if keys.dtype == object else (
        ~np.isnat(keys) if keys.dtype.kind == "M" else np.ones(len(keys), bool))
    uniq, codes = np.unique(keys[present].astype(str) if keys.dtype == object else keys[present],
                            return_inverse=True)
    full = np.full(len(keys), len(uniq), dtype=np.int64)
    full[present] = codes
    order = np.lexsort((ids, times, full))
    bounds = np.flatnonzero(np.diff(full[order])) + 1
    steps: list[Step] = []
    first_times: list[np.datetime64] = []
    for members in np.split(order, bounds):
        code = int(full[members[0]])
        key = keys[members[0]] if code < len(uniq) else None
        span = times[members].astype("int64")
        steps.append(Step(_plain(key), int(span.min()), int(span.max())))
        first_times.append(np.datetime64(times[members[0]], "ns"))
    return steps, first_times


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(key: Any) -> Any:
    if isinstance(key, np.datetime64):
        return key
    return key.item() if isinstance(key, np.generic) else key


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

    @property
    def steps(self) -> int:
        return len(self.step_list)

    @property
    def assets(self) -> tuple[MosaicSpec, ...]:
        return self.templates

    def runs(self, b0: int, b1: int) -> list[tuple[int, list[int], list[int]]]:
        from daskcog.stac.load import band_runs

        return band_runs(self.band_map, b0, b1)

    def rows(self, step: int, bounds: Bounds) -> Any:
        """The file's rows of one step whose bbox meets `bounds` (one filtered scan)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        west, south, east, north = transform_bounds(bounds, self.grid.crs, crs_text("EPSG:4326"))
        s = self.step_list[step]
        stamp = pa.timestamp("us", tz="UTC")
        expr = (
            (pc.field("datetime") >= pa.scalar(s.first, stamp))
            & (pc.field("datetime") <= pa.scalar(s.last, stamp))
        )
        if all(math.isfinite(v) for v in (west, south, east, north)):
            m = _LONLAT_MARGIN
            expr = expr & (
                (pc.field("bbox", "xmin") <= east + m) & (pc.field("bbox", "xmax") >= west - m)
                & (pc.field("bbox", "ymin") <= north + m) & (pc.field("bbox", "ymax") >= south - m)
            )
        table = columns_table(self.url, self.file_options, tuple(k for k, _ in self.facts))
        table = table.filter(expr)
        keys = row_keys(self.groupby, table)
        keep = np.asarray([k == s.key for k in keys], dtype=bool)
        return table.filter(keep)

    def jobs(
        self, step: int, b0: int, b1: int, bounds: Bounds
    ) -> list[tuple[list[int], MosaicSpec, np.ndarray, list[int]]]:
        table = self.rows(step, bounds)
        if table.num_rows == 0:
            return []
        order = np.lexsort((
            table.column("id").to_numpy(zero_copy_only=False).astype(str), _times(table)
        ))
        table = table.take(order)
        items = row_items(_assets_back(table, [k for k, _ in self.facts]))
        facts = dict(self.facts)
        tables = asset_tables(items, facts, patch_url=self.patch_url, **dict(self.store_options))
        out = []
        for asset, positions, numbers in self.runs(b0, b1):
            scenes = tables[asset].scenes
            if not scenes:
                continue
            placement = place(scenes, like=_GridLike(self.grid))
            mspec = build_spec(scenes, placement, groups=(np.arange(len(scenes)),),
                               bands=sorted(set(numbers)), **dict(self.options))
            ids = mspec.candidates(0, bounds)
            if len(ids):
                out.append((positions, mspec, ids, numbers))
        return out

    def __dask_tokenize__(self) -> Any:
        return ("daskcog.ParquetSpec", self.url, repr(self.file_options), self.grid,
                repr(self.groupby), repr(self.step_list), repr(self.facts), self.band_map,
                self.out_dtype, repr(self.fills), self.rescale, repr(self.options),
                repr(self.store_options), repr(self.patch_url), self.loop)


class _GridLike:
    """`place(like=...)` wants crs, transform and shape: a Grid has them under other names."""

    def __init__(self, grid: Grid) -> None:
        self.crs = grid.crs
        self.transform = grid.affine
        self.shape = grid.shape


def _assets_back(table: Any, keys: Sequence[str]) -> Any:
    """The `asset:KEY` columns read by `rows` folded back into one `assets` struct column."""
    import pyarrow as pa

    arrays = [table.column(f"asset:{k}").combine_chunks() for k in keys]
    assets = pa.StructArray.from_arrays(arrays, names=list(keys))
    rest = table.drop_columns([f"asset:{k}" for k in keys])
    return rest.append_column("assets", assets)


# -- entry point (called by daskcog.load) ---------------------------------------------------
def load_geoparquet(
    url: Any,
    *,
    bands: Any,
    crs: Any,
    resolution: Any,
    bbox: Bounds | None,
    bounds: Bounds | None,
    like: Any,
    groupby: Any,
    method: Any,
    chunks: Any,
    dtype: Any,
    nodata: float | None,
    resampling: str,
    errors: str,
    rescale: bool,
    patch_url: Callable[[str], str] | None,
    preserve_original_order: bool,
    batch_size: int | None,
    warp_tolerance: float,
    loop: LoopChoice,
    parquet_options: dict[str, Any] | None = None,
    **store_options: Any,
) -> Any:
    from daskcog.stac.load import _placement, _stac_spec, _stack

    if preserve_original_order:
        raise StacError("preserve_original_order needs item objects; a stac-geoparquet load "
                        "sorts a step's items by (datetime, id)")
    file_options = tuple(sorted((parquet_options if parquet_options is not None else store_options).items()))
    frag = fragment(str(url), file_options)
    head = frag.head(_HEAD_ROWS)
    catalogue = band_rules.catalogue(row_items(head))
    out_bands = band_rules.resolve(bands, catalogue)
    facts = {b.info.asset: b.info for b in out_bands}
    missing = [k for k, info in facts.items() if info.dtype is None]
    if missing:
        raise StacError(f"{url}: assets {missing} state no raster:bands data_type; give dtype=")


    names = frag.physical_schema.names
    core = [c for c in ("id", "datetime", "start_datetime", "bbox") if c in names]
    if isinstance(groupby, str) and groupby in names and groupby not in core:
        core.append(groupby)
    table = frag.to_table(columns=core)
    steps, first_times = plan_steps(groupby, table)
    scenes = _distinct_scenes(frag, names, facts, str(url), patch_url, store_options)
    placement = _placement(scenes, crs, resolution, bbox, bounds, like)
    options = {"method": method, "nodata": nodata, "resampling": resampling, "dtype": None,
               "batch_size": batch_size, "warp_tolerance": warp_tolerance, "loop": loop,
               "errors": errors}
    templates = []
    for key, info in facts.items():
        own = [s for s in scenes if s.label.endswith(f"asset {key!r}")]
        part = place(own[:1], like=_GridLike(placement.grid))
        numbers = [b.info.index for b in out_bands if b.info.asset == key]
        templates.append(build_spec(own[:1], part, groups=(np.arange(0),), bands=numbers,
                                    **{**options, "dtype": dtype or info.dtype}))
    asset_index = {key: k for k, key in enumerate(facts)}
    band_map = tuple((asset_index[b.info.asset], b.info.index) for b in out_bands)
    base = _stac_spec(templates, band_map, out_bands, dtype, rescale, loop)
    spec = ParquetSpec(
        url=str(url), file_options=file_options, grid=placement.grid, groupby=groupby,
        step_list=tuple(steps), facts=tuple(facts.items()), band_map=band_map,
        templates=tuple(templates), out_dtype=base.out_dtype, fills=base.fills,
        rescale=base.rescale, options=tuple(sorted({**options, "dtype": dtype}.items(),
                                                   key=lambda kv: kv[0])),
        store_options=tuple(sorted(store_options.items())), patch_url=patch_url, loop=loop,
    )
    grouping_ = grouping.Grouping(keys=tuple(s.key for s in steps),
                                  members=tuple(() for _ in steps), times=tuple(first_times))
    return _stack(spec, chunks, out_bands, grouping_, None, groupby)


def _distinct_scenes(
    frag: Any,
    names: Sequence[str],
    facts: dict[str, band_rules.BandInfo],
    url: str,
    patch_url: Callable[[str], str] | None,
    store_options: dict[str, Any],
) -> list[Scene]:
    """One Scene per distinct (asset, CRS, transform, shape) in the file, in row order."""
    import pyarrow.compute as pc

    scenes: list[Scene] = []
    item_level = [c for c in ("proj:code", "proj:epsg", "proj:wkt2", "proj:transform",
                              "proj:shape", "proj:bbox") if c in names]
    for key, info in facts.items():
        asset_type = frag.physical_schema.field("assets").type.field(key).type
        fields = [asset_type.field(i).name for i in range(asset_type.num_fields)]
        wanted = {f"a:{f}": pc.field("assets", key, f) for f in fields
                  if f.startswith("proj:") or f == "href"}
        wanted.update({f"i:{c}": pc.field(c) for c in item_level})
        wanted["id"] = pc.field("id")
        table = frag.to_table(columns=wanted)
        has = ~table.column("a:href").is_null().to_numpy(zero_copy_only=False)
        grids = _grid_keys(table)
        seen: dict[Any, int] = {}
        lacking = 0
        for row in np.flatnonzero(has):
            g = grids[row]
            if g is None:
                lacking += 1
                continue
            seen.setdefault(g, int(row))
        if lacking:
            raise StacError(
                f"{url}: {lacking} row(s) have no usable proj:* for asset {key!r}; a "
                "stac-geoparquet load plans its grid from proj:* without opening headers"
            )
        for g, first_row in sorted(seen.items(), key=lambda kv: kv[1]):
            crs, transform, width, height = g
            a, _, c, _, e, f = transform
            href = table.column("a:href")[first_row].as_py()
            scenes.append(Scene.from_footprint(
                patch_url(href) if patch_url else href,
                (c, f + e * height, c + a * width, f), crs, (abs(a), abs(e)),
                shape=(height, width), dtype=info.dtype, nodata=info.nodata, count=info.count,
                label=f"item {table.column('id')[first_row].as_py()} asset {key!r}",
                transform=transform, **store_options,
            ))
    return scenes


def _grid_keys(table: Any) -> list[tuple[Any, ...] | None]:
    """Each row's (CRS, transform, width, height), asset-level fields over item-level ones,
    computed on whole columns; rows without a grid get None."""
    import pyarrow.compute as pc

    n = table.num_rows
    names = set(table.column_names)
    del pc
    crs = np.full(n, None, dtype=object)
    for prefix in ("a:", "i:"):
        for field, kind in (("proj:code", "code"), ("proj:epsg", "epsg"), ("proj:wkt2", "wkt")):
            if prefix + field not in names:
                continue
            values = table.column(prefix + field).to_numpy(zero_copy_only=False)
            take = (crs == None) & np.array(
                [not _missing(v) and v != "" for v in values], dtype=bool
            )
            crs[take] = [f"{kind}|{v}" for v in values[take]]
    transform = _numbers(table, names, "proj:transform", (6, 9))
    shape = _numbers(table, names, "proj:shape", (2,))
    if transform is None or shape is None:
        return [None] * n
    ok = (crs != None) & np.isfinite(transform[:, :6]).all(axis=1) & np.isfinite(shape).all(axis=1)
    labels, codes = np.unique(crs[ok].astype(str), return_inverse=True)
    matrix = np.column_stack([codes.astype(np.float64), transform[ok, :6], shape[ok]])
    uniq, inverse = np.unique(matrix, axis=0, return_inverse=True)
    keys: list[tuple[Any, ...] | None] = []
    for row in uniq:
        kind, _, text = labels[int(row[0])].partition("|")
        grid = proj_grid({_FIELD[kind]: text, "proj:transform": list(row[1:7]),
                          "proj:shape": [int(row[7]), int(row[8])]}, {}, "stac-geoparquet")
        keys.append(None if grid is None else (grid.crs, grid.transform, grid.width, grid.height))
    out: list[tuple[Any, ...] | None] = [None] * n
    for pos, k in zip(np.flatnonzero(ok), np.asarray(inverse).reshape(-1), strict=True):
        out[pos] = keys[int(k)]
    return out


_FIELD = {"code": "proj:code", "epsg": "proj:epsg", "wkt": "proj:wkt2"}


def _numbers(table: Any, names: set[str], field: str, lengths: tuple[int, ...]) -> np.ndarray | None:
    """A list column (asset level over item level) as an (N, L) float array; NaN rows where
    neither level has it; None when the lists do not have one of `lengths`."""
    import pyarrow.compute as pc

    out: np.ndarray | None = None
    for prefix in ("a:", "i:"):
        if prefix + field not in names:
            continue
        column = table.column(prefix + field).combine_chunks()
        size = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        valid = ~column.is_null().to_numpy(zero_copy_only=False)
        sizes = set(np.unique(size[valid]).tolist())
        if not sizes:
            continue
        if len(sizes) != 1 or sizes.pop() not in lengths:
            return None
        width = int(size[valid][0])
        flat = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float64)
        values = np.full((len(column), width), np.nan)
        values[valid] = flat.reshape(-1, width)
        if out is None:
            out = values
        else:
            missing = ~np.isfinite(out).all(axis=1)
            out[missing, : min(width, out.shape[1])] = values[missing, : min(width, out.shape[1])]
    return out
