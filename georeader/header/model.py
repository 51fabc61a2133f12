"""The header model: what one opened header holds (`OpenedFile`, its `Level`s).

Plain values and the per-process tables that go with them (the learnt header sizes,
local file descriptors). Building one is `header.opening.open_file`'s job; reading
through GDAL is `gdal_route`'s: this model imports neither, so it stays a value
that the fetch, decode and assemble steps can share without pulling in an opener.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine
from pyproj import CRS

from georeader.errors import UnsupportedLayoutError
from georeader.geo.gridded import OnGrid
from georeader.io.error_mapping import map_store_error
from georeader.process_state import Table, register

if TYPE_CHECKING:  # annotations only: the model holds these values, it does not make them
    from georeader.header import route
    from georeader.io.stores import Location
    from georeader.read import decode

HEADER_SIZES: Table[str, int] = Table("georeader.header_sizes", lambda s: s.header_hints)
"""url -> bytes that hold the whole header, learnt at first open (prefetch hint); bounded
(`Settings.header_hints`)."""


_LOCAL_FILES: weakref.WeakValueDictionary[int, OpenedFile] = weakref.WeakValueDictionary()
"""Opened headers holding a local file descriptor (a forked child opens its own)."""


def _local_files_after_fork() -> None:
    for opened in list(_LOCAL_FILES.values()):
        opened._after_fork()
    _LOCAL_FILES.clear()


register(
    "georeader.local_files",
    info=lambda: {"open": len(_LOCAL_FILES)},
    clear=lambda: None,  # descriptors close with their header; nothing to drop early
    after_fork=_local_files_after_fork,
)


_header_ids = itertools.count()


def new_header_id() -> str:
    """A process-unique name for one opened header (its tiles' keys in the range cache
    start with it)."""
    return f"{os.getpid()}-{next(_header_ids)}"


def header_size_hint(url: str) -> int | None:
    """Bytes that held the whole header of `url` at its last open in this process, if any."""
    return HEADER_SIZES.get(url)


def forget_header_sizes() -> None:
    """Drop the learnt header sizes, so the next opens start from the default prefetch."""
    HEADER_SIZES.clear()

@dataclass(frozen=True)
class Level(OnGrid):
    """One resolution level of a file: full resolution (0) or an overview (1, 2, ...)."""

    index: int
    width: int
    height: int
    transform: Affine
    data_ifd: Any
    """async-tiff's IFD; for files async-tiff cannot parse, the walk's `RawIFD` (tag values
    only); None for an overview in SubIFDs."""
    mask_ifd: Any | None
    fmt: decode.TileFormat | None
    gdal_index: int | None = None
    """This overview's position in GDAL's list (`OVERVIEW_LEVEL`), which follows the file's
    order; None for full resolution."""
    raw_block: tuple[int, int] | None = None
    """(rows, cols) of a block of a level async-tiff does not read (an overview in SubIFDs)."""

    @functools.cached_property
    def tile_offsets(self) -> np.ndarray:
        """Byte offset of each tile (band-major for planar files), read from Rust once."""
        return np.asarray(self.data_ifd.tile_offsets or [], dtype=np.int64)

    @functools.cached_property
    def tile_byte_counts(self) -> np.ndarray:
        return np.asarray(self.data_ifd.tile_byte_counts or [], dtype=np.int64)

    @functools.cached_property
    def mask_byte_counts(self) -> np.ndarray:
        ifd = self.mask_ifd
        return np.asarray((ifd.tile_byte_counts if ifd is not None else None) or [], dtype=np.int64)

    @property
    def native_fmt(self) -> decode.TileFormat:
        """The decode recipe, which only levels georeader decodes itself (native levels) have."""
        if self.fmt is None:
            raise UnsupportedLayoutError(f"level {self.index} has no native decode recipe")
        return self.fmt

    def tile_indices(self, tx: int, ty: int) -> list[int]:
        """Where tile (tx, ty) sits in `tile_offsets` / `tile_byte_counts`: one index per band
        for band-interleaved files, else one."""
        fmt = self.native_fmt
        nx = math.ceil(self.width / fmt.tile_width)
        index = ty * nx + tx
        if fmt.planar != 2:
            return [index]
        ntiles = nx * math.ceil(self.height / fmt.tile_height)
        return [index + b * ntiles for b in range(fmt.samples)]

    def is_sparse(self, tx: int, ty: int, url: str) -> bool:
        """True when tile (tx, ty) has no bytes (read as nodata or 0, like GDAL).

        A tile with bytes in some bands only is refused: GDAL and async-tiff disagree there.
        """
        present = [bool(self.tile_byte_counts[i]) for i in self.tile_indices(tx, ty)]
        if any(present) and not all(present):
            raise UnsupportedLayoutError(
                f"{url}: tile ({tx}, {ty}) is sparse in some bands only; "
                "rewrite the file as a COG (rio cogeo create)"
            )
        return not any(present)

    @property
    def tile_shape(self) -> tuple[int, int]:
        """(tile_height, tile_width), of native levels."""
        fmt = self.native_fmt
        return fmt.tile_height, fmt.tile_width



@dataclass
class OpenedFile:
    """Everything learnt from one header; shared by the readers of all its levels."""

    location: Location
    store: Any
    key: str
    geotiff: Any
    levels: list[Level]
    layout: route.Layout
    crs: CRS | None
    nodata: float | None
    dtype: np.dtype
    count: int
    alpha_index: int | None
    store_options: dict[str, Any] = field(repr=False)
    """Hold secrets (keys, a signed URL's query): never shown."""
    user_store: Any = None
    """The store the caller gave (the rasterio route reads through it too), or None."""
    tiff: Any = None
    """async-tiff's parsed header (`geotiff` is async-geotiff's view of it, None without
    GeoKeys)."""
    _rasterio: dict[int, tuple[threading.Lock, Any]] = field(default_factory=dict)
    """GDAL datasets per level, opened lazily by `gdal_route.rasterio_level`."""
    _rasterio_lock: threading.Lock = field(default_factory=threading.Lock)
    _fd: int | None = None
    """File descriptor of a local file, for `pread` of tile bytes (this process's own: a
    forked child forgets it, `process_state`'s fork rule)."""
    tile_cache_id: str = field(default_factory=new_header_id, repr=False)
    """This header's name in the tile-bytes cache: bytes fetched under another (older) header of
    the same URL are never served with this one, even where offsets and lengths coincide."""

    def local_fd(self) -> int:
        """A read-only descriptor of the local file, opened once per process."""
        with self._rasterio_lock:
            fd = self._fd
            if fd is None:
                try:
                    fd = os.open(self.location.local_path, os.O_RDONLY)
                except OSError as exc:
                    raise map_store_error(exc, self.location.url, "opening the file") from exc
                self._fd = fd
                _LOCAL_FILES[id(self)] = self
                # closed when no reader holds this header any more (never while one reads)
                weakref.finalize(self, os.close, fd)
            return fd

    def _after_fork(self) -> None:
        self._rasterio_lock = threading.Lock()
        self._fd = None


def choose_level(levels: Sequence[Level], resolution: float | tuple[float, float]) -> int:
    """The coarsest level whose pixels are no larger than `resolution` (GDAL's rule)."""
    target = min(resolution) if isinstance(resolution, tuple) else float(resolution)
    best = 0
    for level in levels:
        if min(level.res) <= target * (1 + 1e-9):
            best = level.index
    return best
