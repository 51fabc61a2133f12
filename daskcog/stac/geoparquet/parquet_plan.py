"""Planning a stac-geoparquet load from columns: property rows per step and distinct grids
(group keys and steps: `daskcog.mosaics.grouping`, the rules items follow too).

Everything here works on whole Arrow / numpy columns, so planning an archive of
100,000 items creates a handful of Python objects per *step* and per distinct
tile grid, not per item.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from daskcog.mosaics.grouping import missing_key, plain_key
from daskcog.mosaics.scenes import Scene
from daskcog.stac.items import bands as band_rules
from daskcog.stac.items.item_dicts import StacError
from daskcog.stac.items.projection import proj_grid


def step_rows(pf: Any, groups: Sequence[np.ndarray], name: str) -> list[list[Any]]:
    """A property column's values, per step, in the step's priority order (None where a
    row has none, or the file has no such column): `with_properties=` reads one column,
    when `to_dataset()` asks. `pf`: the file's `pyarrow.parquet.ParquetFile`."""
    if name not in pf.schema_arrow.names:
        return [[None] * len(rows) for rows in groups]
    values = pf.read(columns=[name]).column(name).to_pylist()
    return [[values[int(r)] for r in rows] for rows in groups]


def step_properties(pf: Any, groups: Sequence[np.ndarray]) -> dict[str, list[Any]]:
    """Scalar property columns (and the id) that have one value within every step, one value
    per step: the non-dimension coordinates of `to_xarray`, read from columns on demand.
    `pf`: the file's `pyarrow.parquet.ParquetFile`."""
    import pyarrow as pa

    scalar = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer,
              pa.types.is_floating, pa.types.is_boolean)
    names = [f.name for f in pf.schema_arrow
             if (f.name == "id" or f.name not in _NOT_PROPERTIES)
             and not f.name.startswith("proj:") and any(test(f.type) for test in scalar)]
    table = pf.read(columns=names)
    out: dict[str, list[Any]] = {}
    for name in names:
        values = table.column(name).to_numpy(zero_copy_only=False)
        per_step: list[Any] = []
        for rows in groups:
            first = values[rows[0]]
            if not all(v == first for v in values[rows[1:]]):
                break
            per_step.append(plain_key(first))
        else:
            out[name] = per_step
    return out


_NOT_PROPERTIES = frozenset({"type", "stac_version", "stac_extensions", "id", "bbox", "geometry",
                             "assets", "links", "collection", "datetime"})


_BATCH_ROWS = 16384
"""Rows decoded at a time while planning: the Arrow buffers of one batch (a few MiB)
are all the planner holds of the file's columns at once."""


def distinct_scenes(
    pf: Any,
    facts: dict[str, band_rules.BandInfo],
    url: str,
    patch_url: Callable[[str], str] | None,
    store_options: dict[str, Any],
    finest: list[tuple[Scene, int]] | None = None,
) -> list[Scene]:
    """One Scene per distinct (asset, CRS, transform, shape) in the file, in row order.

    `pf`: the file's `pyarrow.parquet.ParquetFile`. Per asset only the leaves `href` and
    `proj:*` (and the item-level `proj:*`, the id) are decoded, `_BATCH_ROWS` rows at a
    time, each batch reduced at once to a grid number per row (numpy, whole columns):
    what stays per row is one int32 and one float, never a Python object, so planning an
    archive of 100,000 or 10,000,000 items holds a few MiB of the file at a time.

    `finest`, when given, receives each row's finest grid among the assets (the grid
    odc-stac's rules take per item) as (a scene with that grid, rows with it), so the
    output grid is chosen from item counts without holding the items."""
    import pyarrow.compute as pc

    from daskcog.stac.geoparquet.parquet_file import leaf_paths

    schema = pf.schema_arrow
    names = schema.names
    scenes: list[Scene] = []
    grids: dict[tuple[Any, ...], int] = {}  # distinct grid -> its number, over all assets
    first_scene: dict[int, Scene] = {}
    best_res: np.ndarray | None = None
    best_grid: np.ndarray | None = None
    item_level = [c for c in ("proj:code", "proj:epsg", "proj:wkt2", "proj:transform",
                              "proj:shape", "proj:bbox") if c in names]
    for key, info in facts.items():
        asset_type = schema.field("assets").type.field(key).type
        fields = [asset_type.field(i).name for i in range(asset_type.num_fields)]
        leaves = [f for f in fields if f.startswith("proj:") or f == "href"]
        columns = leaf_paths(schema, [f"assets.{key}.{f}" for f in leaves])
        per_batch: list[np.ndarray] = []
        firsts: dict[int, tuple[int, str, str]] = {}  # grid number -> (row, href, id)
        lacking = offset = 0
        for batch in pf.iter_batches(batch_size=_BATCH_ROWS, use_threads=False,
                                     columns=[*columns, *item_level, "id"]):
            # struct_field, not StructArray.field: a null asset (or item) nulls its fields
            asset = pc.struct_field(batch.column("assets"), key)
            level = {f"a:{f}": pc.struct_field(asset, f) for f in leaves}
            level.update({f"i:{c}": batch.column(c) for c in item_level})
            has = ~level["a:href"].is_null().to_numpy(zero_copy_only=False)
            codes, keys = _grid_keys(level, batch.num_rows)
            numbers = np.array([-1 if k is None else grids.setdefault(k, len(grids))
                                for k in keys] + [-1], dtype=np.int32)
            row_grid = np.where(has, numbers[codes], -2)  # -1: no grid, -2: no asset
            lacking += int(np.count_nonzero(row_grid == -1))
            valid = np.flatnonzero(row_grid >= 0)
            distinct, first = np.unique(row_grid[valid], return_index=True)
            for number, row in zip(distinct.tolist(), valid[first].tolist(), strict=True):
                if number not in firsts:
                    firsts[number] = (offset + row, level["a:href"][row].as_py(),
                                      batch.column("id")[row].as_py())
            per_batch.append(row_grid.astype(np.int32))
            offset += batch.num_rows
        if lacking:
            raise StacError(
                f"{url}: {lacking} row(s) have no usable proj:* for asset {key!r}; a "
                "stac-geoparquet load plans its grid from proj:* without opening headers"
            )
        row_grid = np.concatenate(per_batch) if per_batch else np.zeros(0, np.int32)
        del per_batch
        res_of = np.full(len(grids) + 2, np.inf)  # [-2] and [-1]: no grid, never finest
        for g, n in grids.items():
            res_of[n] = min(abs(g[1][0]), abs(g[1][4]))
        res = res_of[row_grid]
        if best_res is None or best_grid is None:
            best_res, best_grid = np.full(len(res), np.inf), np.full(len(res), -1, np.int32)
        better = res < best_res  # strictly: the first asset keeps a tie, as item loads do
        best_res[better], best_grid[better] = res[better], row_grid[better]
        by_number = {n: g for g, n in grids.items()}
        for number, (_, href, item_id) in sorted(firsts.items(), key=lambda kv: kv[1][0]):
            crs, transform, width, height = by_number[number]
            a, _, c, _, e, f = transform
            scene = Scene.from_footprint(
                patch_url(href) if patch_url else href,
                (c, f + e * height, c + a * width, f), crs, (abs(a), abs(e)),
                shape=(height, width), dtype=info.dtype, nodata=info.nodata, count=info.count,
                label=f"item {item_id} asset {key!r}", transform=transform, **store_options,
            )
            scenes.append(scene)
            first_scene.setdefault(number, scene)
    if finest is not None and best_grid is not None:
        chosen = best_grid[best_grid >= 0]
        numbers_, first, counts = np.unique(chosen, return_index=True, return_counts=True)
        for k in np.argsort(first, kind="stable"):
            finest.append((first_scene[int(numbers_[k])], int(counts[k])))
    return scenes


def _grid_keys(
    level: dict[str, Any], n: int
) -> tuple[np.ndarray, list[tuple[Any, ...] | None]]:
    """Each row's grid as a number into a list of distinct (CRS, transform, width, height),
    asset-level fields (`a:`) over item-level ones (`i:`), computed on whole columns; a row
    without a grid gets -1. Only the distinct values become Python objects."""
    import pyarrow.compute as pc

    labels: dict[str, int] = {}
    crs = np.full(n, -1, dtype=np.int64)
    for prefix in ("a:", "i:"):
        for field, kind in (("proj:code", "code"), ("proj:epsg", "epsg"), ("proj:wkt2", "wkt")):
            column = level.get(prefix + field)
            if column is None:
                continue
            encoded = pc.dictionary_encode(column)
            words = encoded.dictionary.to_pylist()
            number = np.array(
                [-1 if missing_key(v) or v == "" else labels.setdefault(f"{kind}|{v}", len(labels))
                 for v in words] + [-1], dtype=np.int64)
            index = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            row = number[index]
            take = (crs < 0) & (row >= 0)
            crs[take] = row[take]
    transform = _numbers(level, "proj:transform", (6, 9))
    shape = _numbers(level, "proj:shape", (2,))
    if transform is None or shape is None:
        return np.full(n, -1, dtype=np.int64), []
    ok = (crs >= 0) & np.isfinite(transform[:, :6]).all(axis=1) & np.isfinite(shape).all(axis=1)
    columns = [crs[ok].astype(np.float64), *transform[ok, :6].T, *shape[ok].T]
    # distinct rows by one column at a time (a sort of a 1-D array each; each column holds a
    # handful of values): ~20x faster and lighter than np.unique(matrix, axis=0)
    inverse = np.zeros(int(np.count_nonzero(ok)), dtype=np.int64)
    for column in columns:
        _, code = np.unique(column, return_inverse=True)
        _, inverse = np.unique(inverse * (int(code.max(initial=0)) + 1) + code,
                               return_inverse=True)
    _, first = np.unique(inverse, return_index=True)
    uniq = np.column_stack([column[first] for column in columns]).reshape(len(first), 9)
    texts = {v: k for k, v in labels.items()}
    keys: list[tuple[Any, ...] | None] = []
    for row in uniq:
        kind, _, text = texts[int(row[0])].partition("|")
        grid = proj_grid({_FIELD[kind]: text, "proj:transform": list(row[1:7]),
                          "proj:shape": [int(row[7]), int(row[8])]}, {}, "stac-geoparquet")
        keys.append(None if grid is None else (grid.crs, grid.transform, grid.width, grid.height))
    codes = np.full(n, -1, dtype=np.int64)
    codes[ok] = np.asarray(inverse).reshape(-1)
    return codes, keys


_FIELD = {"code": "proj:code", "epsg": "proj:epsg", "wkt": "proj:wkt2"}


def _numbers(
    level: dict[str, Any], field: str, lengths: tuple[int, ...]
) -> np.ndarray | None:
    """A list column (asset level over item level) as an (N, L) float array; NaN rows where
    neither level has it; None when the lists do not have one of `lengths`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out: np.ndarray | None = None
    for prefix in ("a:", "i:"):
        column = level.get(prefix + field)
        if column is None or pa.types.is_null(column.type):
            continue
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
