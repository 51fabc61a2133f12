"""Planning a stac-geoparquet load from columns: group keys, steps and distinct grids.

Everything here works on whole Arrow / numpy columns, so planning an archive of
100,000 items creates a handful of Python objects per *step* and per distinct
tile grid, not per item.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from daskcog.mosaics.footprints import Scene
from daskcog.stac import bands as band_rules
from daskcog.stac.items import StacError
from daskcog.stac.projection import proj_grid


def row_times(table: Any) -> np.ndarray:
    import pyarrow.compute as pc

    column = table.column("datetime")
    if "start_datetime" in table.column_names:
        column = pc.coalesce(column, table.column("start_datetime"))
    return column.cast("timestamp[us]").to_numpy(zero_copy_only=False).astype("datetime64[us]")


def row_keys(groupby: Any, table: Any, lon: float | None = None) -> np.ndarray:
    """The group key of each row, computed on columns (odc-stac's rules, like `grouping`).

    `lon`: the output grid's longitude, odc-stac's solar day for every row (else each
    row's bbox centre)."""
    if groupby is None or groupby == "id":
        return table.column("id").to_numpy(zero_copy_only=False).astype(str)
    if callable(groupby):
        raise StacError("groupby callables need item objects; a stac-geoparquet load takes a "
                        "string groupby")
    if groupby == "time":
        return row_times(table)
    if groupby == "day":
        return row_times(table).astype("datetime64[D]")
    if groupby == "month":
        return row_times(table).astype("datetime64[M]")
    if groupby == "solar_day":
        if lon is None:
            bbox = table.column("bbox")
            lons = (_field(bbox, "xmin") + _field(bbox, "xmax")) / 2
        else:
            lons = np.full(table.num_rows, float(lon))
        hours = np.trunc(lons / 15).astype("int64").astype("timedelta64[h]")
        return (row_times(table) + hours).astype("datetime64[D]")
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


def plan_steps(
    groupby: Any, table: Any, lon: float | None = None
) -> tuple[list[Step], list[np.datetime64], list[np.ndarray]]:
    """Steps sorted by key; each with its rows' time range, its first item's time, and its
    row numbers (priority order)."""
    keys = row_keys(groupby, table, lon)
    times = row_times(table)
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
    groups = np.split(order, bounds)
    for members in groups:
        code = int(full[members[0]])
        key = keys[members[0]] if code < len(uniq) else None
        span = times[members].astype("int64")
        steps.append(Step(_plain(key), int(span.min()), int(span.max())))
        first_times.append(np.datetime64(times[members[0]], "ns"))
    return steps, first_times, groups


def step_rows(frag: Any, groups: Sequence[np.ndarray], name: str) -> list[list[Any]]:
    """A property column's values, per step, in the step's priority order (None where a
    row has none, or the file has no such column): `with_properties=` reads one column,
    when `to_dataset()` asks."""
    if name not in frag.physical_schema.names:
        return [[None] * len(rows) for rows in groups]
    values = frag.to_table(columns=[name]).column(name).to_pylist()
    return [[values[int(r)] for r in rows] for rows in groups]


def step_properties(frag: Any, groups: Sequence[np.ndarray]) -> dict[str, list[Any]]:
    """Scalar property columns (and the id) that have one value within every step, one value
    per step: the non-dimension coordinates of `to_xarray`, read from columns on demand."""
    import pyarrow as pa

    scalar = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer,
              pa.types.is_floating, pa.types.is_boolean)
    names = [f.name for f in frag.physical_schema
             if (f.name == "id" or f.name not in _NOT_PROPERTIES)
             and not f.name.startswith("proj:") and any(test(f.type) for test in scalar)]
    table = frag.to_table(columns=names)
    out: dict[str, list[Any]] = {}
    for name in names:
        values = table.column(name).to_numpy(zero_copy_only=False)
        per_step: list[Any] = []
        for rows in groups:
            first = values[rows[0]]
            if not all(v == first for v in values[rows[1:]]):
                break
            per_step.append(_plain(first))
        else:
            out[name] = per_step
    return out


_NOT_PROPERTIES = frozenset({"type", "stac_version", "stac_extensions", "id", "bbox", "geometry",
                             "assets", "links", "collection", "datetime"})


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(key: Any) -> Any:
    if isinstance(key, np.datetime64):
        return key
    return key.item() if isinstance(key, np.generic) else key


def distinct_scenes(
    frag: Any,
    names: Sequence[str],
    facts: dict[str, band_rules.BandInfo],
    url: str,
    patch_url: Callable[[str], str] | None,
    store_options: dict[str, Any],
    finest: list[tuple[Scene, int]] | None = None,
) -> list[Scene]:
    """One Scene per distinct (asset, CRS, transform, shape) in the file, in row order.

    `finest`, when given, receives each row's finest grid among the assets (the grid
    odc-stac's rules take per item) as (a scene with that grid, rows with it), so the
    output grid is chosen from item counts without holding the items."""
    import pyarrow.compute as pc

    scenes: list[Scene] = []
    best: list[tuple[float, Any]] | None = None
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
        if best is None:
            best = [(math.inf, None)] * len(grids)
        for k, g in enumerate(grids):
            if g is not None and has[k] and min(abs(g[1][0]), abs(g[1][4])) < best[k][0]:
                best[k] = (min(abs(g[1][0]), abs(g[1][4])), g)
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
    if finest is not None and best is not None:
        by_grid = {(s.crs, s.transform, s.width, s.height): s for s in reversed(scenes)}
        counts: dict[Any, int] = {}
        for _, g in best:
            if g is not None:
                counts[g] = counts.get(g, 0) + 1
        finest.extend((by_grid[g], n) for g, n in counts.items())
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
            take = ~_known(crs) & np.array(
                [not _missing(v) and v != "" for v in values], dtype=bool
            )
            crs[take] = [f"{kind}|{v}" for v in values[take]]
    transform = _numbers(table, names, "proj:transform", (6, 9))
    shape = _numbers(table, names, "proj:shape", (2,))
    if transform is None or shape is None:
        return [None] * n
    ok = _known(crs) & np.isfinite(transform[:, :6]).all(axis=1) & np.isfinite(shape).all(axis=1)
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


def _known(values: np.ndarray) -> np.ndarray:
    return np.fromiter((v is not None for v in values), dtype=bool, count=len(values))


_FIELD = {"code": "proj:code", "epsg": "proj:epsg", "wkt": "proj:wkt2"}


def _numbers(
    table: Any, names: set[str], field: str, lengths: tuple[int, ...]
) -> np.ndarray | None:
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
