"""RasterioReader: the synchronous GDAL-backed reader, used as the reference.

Tests compare every async read against it, and the async reader routes files
async-geotiff cannot read exactly (striped, unusual codecs or bit depths)
through it, in a worker thread. Remote objects are read through obstore with
rasterio's `opener=` hook, so GDAL sees ranged reads, not a full download, and
uses the same credentials and options as the async path.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from georeader.contract import FromLevelFacts, LevelFacts, ReaderSurface
from georeader.errors import GeoreaderError, InvalidHeaderError, TileDecodeError
from georeader.geo import windows
from georeader.geo.geotensor import GeoTensor, norm_crs
from georeader.io.error_mapping import map_store_error
from georeader.io.stores import Location, check_not_folder, reader_location

_NO_NUMPY_TYPE = {"complex_int16": "complex64", "complex_int32": "complex128"}


class _ObstoreFile:
    """The file object rasterio's opener wants, over obstore's sync ranged reader."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader

    def read(self, size: int = -1) -> bytes:
        data = self._reader.read() if size is None or size < 0 else self._reader.read(size)
        return bytes(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._reader.seek(offset, whence)

    def tell(self) -> int:
        return self._reader.tell()

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> _ObstoreFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RecordingFile:
    """A file object for GDAL's opener that keeps the store errors its reads raise.

    GDAL turns a failed read into "TIFFFillStrip: Read error ... got -1 bytes" and rasterio
    into "Read failed. See previous exception": the store's own error (transient or not) is
    lost on the way, so it is kept here for `RasterioReader` to report."""

    def __init__(self, inner: Any, errors: list[BaseException]) -> None:
        self._inner = inner
        self._errors = errors

    def read(self, size: int = -1) -> bytes:
        try:
            return self._inner.read(size)
        except Exception as exc:
            self._errors.append(exc)
            raise

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> RecordingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _obstore_opener(
    location: Location, store_options: dict[str, Any], store: Any = None,
    errors: list[BaseException] | None = None,
) -> Any:
    """A rasterio `opener` that reads the object (and any sidecar GDAL asks for) via obstore;
    store errors are appended to `errors`."""
    import posixpath

    import obstore

    from georeader.io.signed_urls import SignedFile, SignedStore
    from georeader.io.stores import open_store

    if store is None:
        store, _ = open_store(location.url, **store_options)
    folder = posixpath.dirname(location.key)  # kept: a caller's store holds whole keys

    kept = [] if errors is None else errors

    def open_file(path: str) -> _ObstoreFile | SignedFile:
        name = str(path).replace("\\", "/").rsplit("/", 1)[-1]  # GDAL asks for /vsi.../name
        key = posixpath.join(folder, name)
        if isinstance(store, SignedStore):
            if key != location.key:  # a sidecar GDAL looks for: not covered by the signature
                raise FileNotFoundError(key)
            return SignedFile(store, key)
        return _ObstoreFile(obstore.open_reader(store, key, buffer_size=256 * 1024))

    def opener(path: str, mode: str = "rb") -> RecordingFile:
        try:
            inner = open_file(path)
        except FileNotFoundError:
            raise
        except Exception as exc:
            kept.append(exc)
            raise
        return RecordingFile(inner, kept)

    return opener


class RasterioReader(FromLevelFacts, ReaderSurface):
    """Sync reader with the same metadata surface as `AsyncGeoTIFFReader`.

    Invalid pixels (nodata, internal mask, alpha == 0 for the colour bands) are
    returned as the fill value, which defaults to the nodata value or 0.
    """

    def __init__(
        self,
        path_or_url: str | os.PathLike[str] | Location,
        *,
        overview_level: int = 0,
        bands: Sequence[int] | None = None,
        store: Any = None,
        overview_hint: tuple[int, int, int] | None = None,
        **store_options: Any,
    ) -> None:
        """`overview_level` k > 0 is the k-th finest overview, as for `AsyncGeoTIFFReader`
        (GDAL lists overviews in file order, which may differ); `overview_hint` is
        (GDAL's index, width, height) when the caller knows them (checked, not trusted)."""
        self.location, store_options = reader_location(path_or_url, store, store_options)
        self.overview_level = overview_level
        self._store_options = store_options
        self._io_errors: list[BaseException] = []
        self._opener = (
            None
            if self.location.is_local
            else _obstore_opener(self.location, store_options, store, self._io_errors)
        )
        self._overview_hint = overview_hint
        self._bands = list(bands) if bands is not None else None
        self._src: Any = None
        # no I/O here: the dataset is opened by `open()` (or `with`, or the first use)

    def open(self) -> RasterioReader:
        """Open the dataset (once; GDAL reads the header now); returns the reader.

        `with RasterioReader(url) as reader:` opens it too, and any read or metadata
        property opens it at first use."""
        if self._src is not None:
            return self
        check_not_folder(self.location)
        overview_level, overview_hint = self.overview_level, self._overview_hint
        src_found: Any = None
        if overview_level > 0 and overview_hint is not None:
            src = self._open(OVERVIEW_LEVEL=overview_hint[0])
            if (src.width, src.height) == overview_hint[1:]:
                src_found = src
            else:
                src.close()
        if src_found is None:
            base = self._open()
            if overview_level == 0:
                src_found = base
            else:
                try:
                    src_found = self._open_overview(base, overview_level, overview_hint)
                finally:
                    base.close()
        if self._bands is None:
            self._bands = list(range(1, src_found.count + 1))
        self._src = src_found
        return self

    @property
    def _dataset(self) -> Any:
        return self.open()._src

    @property
    def bands(self) -> list[int]:
        """The bands read (1-based), all of them unless `bands=` said otherwise."""
        self.open()
        return list(self._bands or [])

    @bands.setter
    def bands(self, bands: Sequence[int]) -> None:
        self._bands = list(bands)

    def _open(self, **kwargs: Any) -> Any:
        before = len(self._io_errors)
        try:
            if self._opener is None:
                return rasterio.open(self.location.local_path, **kwargs)
            return rasterio.open(self.location.key, opener=self._opener, **kwargs)
        except RasterioIOError as exc:
            raise self._gdal_error(exc, before, "opening the file with GDAL") from exc

    def _gdal_error(self, exc: BaseException, before: int, doing: str) -> GeoreaderError:
        """The typed error of a failed GDAL call: the store's own error when a read from the
        store failed (retried if transient), else the file's data is at fault (never retried)
        and GDAL's own explanation, innermost cause first, is the message."""
        if len(self._io_errors) > before:
            return map_store_error(self._io_errors[-1], self.url, doing)
        causes: list[str] = []
        link: BaseException | None = exc
        while link is not None and len(causes) < 8:
            text = str(link).strip()
            if text and "See previous exception" not in text and text not in causes:
                causes.append(text)
            link = link.__cause__ or link.__context__
        why = "; ".join(reversed(causes)) or type(exc).__name__
        if doing.startswith("open"):
            return InvalidHeaderError(f"{self.url}: GDAL cannot read the file ({doing}): {why}")
        return TileDecodeError(f"{self.url}: GDAL cannot read the file's data ({doing}): {why}")

    def _open_overview(
        self, base: Any, level: int, hint: tuple[int, int, int] | None
    ) -> Any:
        """GDAL's dataset of our overview `level` (the level-th finest).

        GDAL's `OVERVIEW_LEVEL` follows the file's order of overview IFDs; a file may store
        them smallest-first, so GDAL's index is found by size, not assumed."""
        factors = list(base.overviews(1))
        if not 1 <= level <= len(factors):
            from georeader.errors import WindowError

            raise WindowError(
                f"{self.url}: overview_level {level} does not exist; GDAL lists "
                f"{len(factors)} overview(s)"
            )
        if factors == sorted(factors) and hint is None:
            return self._open(OVERVIEW_LEVEL=level - 1)
        sizes = []
        for index in range(len(factors)):
            with self._open(OVERVIEW_LEVEL=index) as src:
                sizes.append((src.width, src.height))
        if hint is not None:
            if hint[1:] not in sizes:
                from georeader.errors import UnsupportedLayoutError

                raise UnsupportedLayoutError(
                    f"{self.url}: GDAL has no overview of {hint[1]} x {hint[2]} pixels "
                    f"(it lists {sizes})"
                )
            return self._open(OVERVIEW_LEVEL=sizes.index(hint[1:]))
        order = sorted(range(len(sizes)), key=lambda i: -sizes[i][0] * sizes[i][1])
        return self._open(OVERVIEW_LEVEL=order[level - 1])

    # -- metadata ---------------------------------------------------------
    @functools.cached_property
    def level_facts(self) -> LevelFacts:
        """GDAL's values for this level, read at first use (they do not change)."""
        src = self._dataset
        return LevelFacts(
            crs=norm_crs(src.crs),
            transform=src.transform,
            width=src.width,
            height=src.height,
            nodata=src.nodata,
            block_shape=src.block_shapes[0],
            overview_count=len(src.overviews(1)),
        )

    @property
    def dtype(self) -> np.dtype:
        """numpy's type of the samples: GDAL's CInt16 / CInt32 (no numpy type) read as
        complex64 / complex128, as rasterio returns them."""
        name = self._dataset.dtypes[0]
        return np.dtype(_NO_NUMPY_TYPE.get(name, name))

    @property
    def res(self) -> tuple[float, float]:
        return self._dataset.res

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return tuple(self._dataset.bounds)

    # -- reads ------------------------------------------------------------
    def read_window(
        self, window: Window, *, boundless: bool = True, fill_value: float | None = None
    ) -> GeoTensor:
        try:
            window = windows.to_int_window(window)
        except windows.WindowError as exc:
            raise windows.WindowError(f"{self.url}: {exc}") from None
        fill = self.fill_value_default if fill_value is None else fill_value
        inside = windows.clip_window(window, self.width, self.height)
        if not boundless and inside != window:
            raise windows.WindowError(
                f"{self.url}: window {window!r} reaches outside the image "
                f"({self.height}x{self.width}); use boundless=True"
            )
        out = np.full((self.count, int(window.height), int(window.width)), fill, self.dtype)
        if inside is not None:
            before = len(self._io_errors)
            try:
                data = self._dataset.read(self.bands, window=inside, masked=True)
            except RasterioIOError as exc:
                doing = (
                    f"reading window (col_off={int(inside.col_off)}, row_off={int(inside.row_off)}"
                    f", width={int(inside.width)}, height={int(inside.height)})"
                )
                raise self._gdal_error(exc, before, doing) from exc
            values = data.filled(fill) if np.ma.is_masked(data) else np.asarray(data)
            r, c = int(inside.row_off - window.row_off), int(inside.col_off - window.col_off)
            out[:, r : r + int(inside.height), c : c + int(inside.width)] = values
        return GeoTensor(out, windows.window_transform(window, self.transform), self.crs, fill)

    def read_bounds(self, bounds: windows.Bounds, **kwargs: Any) -> GeoTensor:
        return self.read_window(windows.window_from_bounds(bounds, self.transform), **kwargs)

    def read_geoslice(
        self,
        slice_: windows.GeoSlice | slice,
        cols: slice | None = None,
        *,
        boundless: bool = True,
        fill_value: float | None = None,
    ) -> GeoTensor:
        """Read the pixels of one geoslice value, as `AsyncGeoTIFFReader.read_geoslice`."""
        window, empty = self.geoslice_read(slice_, cols, fill_value)
        if empty is not None:
            return empty
        return self.read_window(window, boundless=boundless, fill_value=fill_value)

    def load(self, **kwargs: Any) -> GeoTensor:
        return self.read_window(Window(0, 0, self.width, self.height), **kwargs)

    def close(self) -> None:
        src, self._src = self._src, None
        if src is not None:
            src.close()

    def __enter__(self) -> RasterioReader:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
