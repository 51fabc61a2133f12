"""The GDAL route: levels georeader does not decode itself are read through rasterio.

One lazily opened GDAL dataset per level of an opened header, with a lock (GDAL
handles are not thread-safe). Kept apart from the header model (`header.model`), so
that the model, and the fetch / decode / assemble steps that share it, never import
GDAL's reader.
"""

from __future__ import annotations

import threading

from georeader.header.model import OpenedFile
from georeader.rasterio_reader import RasterioReader


def rasterio_level(opened: OpenedFile, level: int) -> tuple[threading.Lock, RasterioReader]:
    """The GDAL dataset of `level` of `opened` (opened at first use) and its lock."""
    with opened._rasterio_lock:
        if level not in opened._rasterio:
            lvl = opened.levels[level]
            hint = None if lvl.gdal_index is None else (lvl.gdal_index, lvl.width, lvl.height)
            reader = RasterioReader(
                opened.location, store=opened.user_store, overview_level=level,
                overview_hint=hint, **opened.store_options,
            ).open()
            opened._rasterio[level] = (threading.Lock(), reader)
        found: tuple[threading.Lock, RasterioReader] = opened._rasterio[level]
        return found
