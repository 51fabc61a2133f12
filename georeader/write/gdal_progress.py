"""GDAL's overview building and copy with its progress callback: progress shown, Ctrl-C obeyed.

rasterio's `build_overviews` and `rasterio.shutil.copy` take no progress callback,
so the last step of a COG write (overviews, then the COG driver's copy) ran for
tens of seconds on a large mosaic with nothing shown, and Ctrl-C waited for GDAL
to finish (34-42 s measured). GDAL's C functions take a `GDALProgressFunc`; this
module calls them through ctypes on the very GDAL library rasterio loaded (same
process, same drivers, same configuration from `rasterio.Env`), with a callback
that reports `(stage, fraction)` and returns 0 ("stop") once Ctrl-C was pressed
or `cancel` is set; GDAL then stops within one block and the write raises
`KeyboardInterrupt` (or `WriteCancelled`).

Where the GDAL library cannot be found (a GDAL rasterio was not linked with in a
way ctypes can see), `available()` is False and the caller falls back to rasterio
without progress.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence

StageProgress = Callable[[str, float], None]
"""Called with (stage name, fraction done in 0..1) from GDAL's progress callback."""

_PROGRESS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_double, ctypes.c_char_p, ctypes.c_void_p)
_GA_READONLY, _GA_UPDATE = 0, 1


class GDALCallError(RuntimeError):
    """A GDAL call made here failed; the message is GDAL's last error."""


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The libgdal rasterio has loaded into this process (found in /proc/self/maps, else
    beside rasterio's wheel), with the signatures used here declared."""
    import rasterio  # noqa: F401 - loads GDAL and registers its drivers

    candidates: list[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            candidates += sorted(
                {line.split()[-1] for line in maps if "libgdal" in line and "/" in line}
            )
    except OSError:
        pass
    wheel_libs = os.path.join(os.path.dirname(os.path.dirname(rasterio.__file__)), "rasterio.libs")
    candidates += glob.glob(os.path.join(wheel_libs, "libgdal*"))
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if not hasattr(lib, "GDALCreateCopy"):
            continue
        lib.GDALGetDriverByName.restype = ctypes.c_void_p
        lib.GDALGetDriverByName.argtypes = [ctypes.c_char_p]
        lib.GDALOpen.restype = ctypes.c_void_p
        lib.GDALOpen.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.GDALClose.restype = ctypes.c_int
        lib.GDALClose.argtypes = [ctypes.c_void_p]
        lib.GDALCreateCopy.restype = ctypes.c_void_p
        lib.GDALCreateCopy.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int,
            ctypes.POINTER(ctypes.c_char_p), _PROGRESS, ctypes.c_void_p,
        ]
        lib.GDALBuildOverviews.restype = ctypes.c_int
        lib.GDALBuildOverviews.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int),
            ctypes.c_int, ctypes.POINTER(ctypes.c_int), _PROGRESS, ctypes.c_void_p,
        ]
        lib.CPLGetLastErrorMsg.restype = ctypes.c_char_p
        lib.CPLGetLastErrorMsg.argtypes = []
        return lib
    return None


def available() -> bool:
    return _library() is not None


class _Callback:
    """GDAL's progress function: reports, and asks GDAL to stop once interrupted.

    A Ctrl-C arrives as KeyboardInterrupt while Python runs, i.e. inside this callback
    (GDAL's own C code cannot be interrupted): it is caught here, GDAL is told to stop
    (return 0), and the caller raises it again once GDAL has returned."""

    def __init__(self, stage: str, report: StageProgress | None, cancel: threading.Event) -> None:
        self.stage = stage
        self.report = report
        self.cancel = cancel
        self.interrupted = False
        self.function = _PROGRESS(self._call)

    def _call(self, fraction: float, message: bytes | None, data: int | None) -> int:
        try:
            if self.cancel.is_set():
                return 0
            if self.report is not None:
                self.report(self.stage, min(max(float(fraction), 0.0), 1.0))
            return 0 if self.cancel.is_set() else 1
        except KeyboardInterrupt:  # raised by the report itself (a Ctrl-C is `on_sigint`'s)
            self.interrupted = True
            self.cancel.set()
            return 0
        except Exception:  # a failing progress display must not fail the write
            return 1

    @contextlib.contextmanager
    def on_sigint(self) -> Iterator[None]:
        """While GDAL runs: Ctrl-C only sets the flag the callback answers with "stop".

        Python's own handler would raise KeyboardInterrupt at whatever bytecode the
        callback is at, also before its `try` (then ctypes prints the traceback, returns
        nothing useful and GDAL carries on: measured, the file was written). Only the
        main thread may set handlers; elsewhere Ctrl-C does not arrive anyway."""
        if (
            threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        ):
            yield
            return

        def stop(signum: int, frame: object) -> None:
            self.interrupted = True
            self.cancel.set()

        previous = signal.signal(signal.SIGINT, stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def raise_if_stopped(self) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        if self.cancel.is_set():
            raise WriteCancelled(f"{self.stage}: cancelled")


class WriteCancelled(RuntimeError):
    """The write was cancelled through its `cancel` event."""


def _error(lib: ctypes.CDLL, what: str) -> GDALCallError:
    message = lib.CPLGetLastErrorMsg() or b""
    return GDALCallError(f"{what}: {message.decode('utf-8', 'replace') or 'GDAL failed'}")


def build_overviews(
    path: str,
    factors: Sequence[int],
    resampling: str,
    *,
    progress: StageProgress | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """GDALBuildOverviews on `path` (opened for update): internal, nodata-aware overviews,
    what rasterio's `build_overviews` does, with progress and Ctrl-C."""
    lib = _library()
    if lib is None:
        raise GDALCallError("GDAL's library was not found")
    callback = _Callback("overviews", progress, cancel or threading.Event())
    handle = lib.GDALOpen(os.fsencode(path), _GA_UPDATE)
    if not handle:
        raise _error(lib, f"opening {path} for overviews")
    try:
        levels = (ctypes.c_int * len(factors))(*factors)
        with callback.on_sigint():
            status = lib.GDALBuildOverviews(
                handle, resampling.upper().encode(), len(factors), levels, 0, None,
                callback.function, None,
            )
    finally:
        lib.GDALClose(handle)
    callback.raise_if_stopped()
    if status != 0:
        raise _error(lib, f"building overviews of {path}")


def create_copy(
    source: str,
    destination: str,
    driver: str,
    options: dict[str, str],
    *,
    progress: StageProgress | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """GDALCreateCopy(source -> destination) with `driver` and creation options, what
    `rasterio.shutil.copy` does, with progress and Ctrl-C."""
    lib = _library()
    if lib is None:
        raise GDALCallError("GDAL's library was not found")
    callback = _Callback(f"{driver} copy", progress, cancel or threading.Event())
    gdal_driver = lib.GDALGetDriverByName(driver.encode())
    if not gdal_driver:
        raise GDALCallError(f"GDAL has no {driver} driver")
    pairs = [f"{key.upper()}={value}".encode() for key, value in options.items()]
    option_list = (ctypes.c_char_p * (len(pairs) + 1))(*pairs, None)
    handle = lib.GDALOpen(os.fsencode(source), _GA_READONLY)
    if not handle:
        raise _error(lib, f"opening {source}")
    try:
        with callback.on_sigint():
            copied = lib.GDALCreateCopy(
                gdal_driver, os.fsencode(destination), handle, 0, option_list, callback.function,
                None,
            )
        if copied:
            lib.GDALClose(copied)
    finally:
        lib.GDALClose(handle)
    callback.raise_if_stopped()
    if not copied:
        raise _error(lib, f"writing {destination} with the {driver} driver")
