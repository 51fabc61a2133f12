"""A stac-geoparquet file, opened once per process: the Arrow side of daskcog.load's parquet input.

The file is read through pyarrow from a local path or, for any store URL,
through obstore's ranged reads. `columns_table` keeps the columns chunk tasks
filter as one Arrow table per process (numbers and strings in Arrow buffers, no
Python objects); `row_items` turns only the rows a chunk needs into item dicts.
"""

from __future__ import annotations

import io
import threading
from typing import Any

import numpy as np

from daskcog.mosaics.grouping import ROW_NUMBER
from daskcog.runtime import process_state
from georeader.io import canonical_json

_CORE = frozenset({"type", "stac_version", "stac_extensions", "id", "bbox", "geometry",
                   "assets", "links", "collection"})
_files: dict[tuple[str, str, str, int], Any] = {}
_files_lock = threading.Lock()
_MAX_FILES = 64


def fragment(url: str, options: tuple[tuple[str, Any], ...]) -> Any:
    """A pyarrow Parquet fragment over the file (local, or any obstore store), cached per
    process and thread (the footer is read once per thread)."""
    import pyarrow.dataset as pds

    return _cached(("fragment", url, canonical_json(options), threading.get_ident()),
                   lambda: _open(url, options, pds.ParquetFileFormat().make_fragment))


def parquet_file(url: str, options: tuple[tuple[str, Any], ...]) -> Any:
    """A `pyarrow.parquet.ParquetFile` over the file, cached like `fragment`.

    Why beside the fragment: its `read` / `iter_batches` decode only the *leaf* columns
    asked for (`assets.B04.href`), where a dataset scan of a nested field reference decodes
    the whole top-level struct first (measured on 100,000 items: ~100 MiB of Arrow buffers
    for one asset's href and proj:*, ~20 MiB this way), and `iter_batches` stops after the
    first rows where a fragment's `head` decodes the whole row group (0.8 s, ~120 MiB)."""
    import pyarrow.parquet as pq

    def make(source: Any, filesystem: Any = None) -> Any:
        return pq.ParquetFile(source, filesystem=filesystem)

    return _cached(("file", url, canonical_json(options), threading.get_ident()),
                   lambda: _open(url, options, make))


def _cached(key: tuple[str, str, str, int], make: Any) -> Any:
    # one handle per thread: a Python file object under pyarrow is not safe to share
    with _files_lock:
        found = _files.get(key)
    if found is not None:
        return found
    made = make()
    with _files_lock:
        while len(_files) >= _MAX_FILES:  # bounded: threads and files come and go
            _files.pop(next(iter(_files)))
        return _files.setdefault(key, made)


def _open(url: str, options: tuple[tuple[str, Any], ...], make: Any) -> Any:
    """`make(source[, filesystem])` over a local path or an obstore reader of any store."""
    import pyarrow as pa

    from georeader import parse_location
    from georeader.io import build_store

    location = parse_location(url)
    if location.url.startswith("file://"):
        import pyarrow.fs as pfs

        return make(location.url[len("file://"):], filesystem=pfs.LocalFileSystem())
    import obstore

    store = build_store(location, **dict(options))
    return make(pa.PythonFile(_Readable(obstore.open_reader(store, location.key)), mode="r"))


def leaf_paths(schema: Any, prefixes: Any) -> list[str]:
    """The dotted Parquet column paths (`assets.B04.href`) of `schema` (an Arrow schema)
    that exist, out of `prefixes`; for `ParquetFile.read(columns=...)`, which decodes only
    those leaves."""
    names = set(_paths(schema))
    return [p for p in prefixes if p in names]


def _paths(schema: Any) -> list[str]:
    import pyarrow as pa

    out: list[str] = []

    def walk(prefix: str, typ: Any) -> None:
        out.append(prefix)
        if pa.types.is_struct(typ):
            for i in range(typ.num_fields):
                walk(f"{prefix}.{typ.field(i).name}", typ.field(i).type)

    for f in schema:
        walk(f.name, f.type)
    return out


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
    """The columns a chunk task filters (all but geometry and links; of `assets` only the
    asset structs it reads), decoded once per process and kept as one Arrow table (no Python
    objects).

    Measured (benchmarks/bench_geoparquet.py): a scan of the file per chunk decodes every
    row group that may match, ~67 ms a chunk for 20,000 items in one row group; DuckDB's
    read_parquet ~14 ms; a filter of this cached table ~1-2 ms.
    """
    key = (url, canonical_json(options), assets)
    with _files_lock:
        found = _tables.get(key)
    if found is not None:
        return found
    pf = parquet_file(url, options)
    names = pf.schema_arrow.names
    wanted = [c for c in names if c not in ("geometry", "links", "assets")]
    # only the leaves of the asked assets are decoded (`assets.B04`), never the other assets
    wanted += leaf_paths(pf.schema_arrow, [f"assets.{name}" for name in assets])
    import pyarrow as pa

    table = pf.read(columns=wanted).combine_chunks()
    # each row's number in the file: groupby="id" steps are rows (odc-stac's positions)
    table = table.append_column(ROW_NUMBER, pa.array(np.arange(table.num_rows, dtype=np.int64)))
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
        item = {"type": "Feature", "id": row.get("id"), "bbox": bbox, "assets": assets,
                "properties": props}
        if row.get("collection") is not None:  # stac_cfg's entries are per collection
            item["collection"] = row["collection"]
        items.append(item)
    return items




def _clear() -> None:
    with _files_lock:
        _files.clear()
        _tables.clear()


def _info() -> dict[str, int]:
    with _files_lock:
        return {"files": len(_files), "max_files": _MAX_FILES, "tables": len(_tables),
                "max_tables": _MAX_TABLES}


process_state.register("daskcog.parquet-files", info=_info, clear=_clear)
