"""Shared pieces of the real-object-store tests (and of benchmarks/bench_s3.py).

* The test files: a multi-tile COG with an internal mask and two overviews, and
  a striped (untiled) GTiff that the async reader must route through rasterio.
* Store options for the SeaweedFS S3 server and the range HTTP server.
* Read helpers: `AsyncGeoTIFFReader` (whole level, or tile by tile to make many
  requests) and `daskcog.open(...).data.compute()` on the threaded scheduler.
* `RangeLogProxy`: a `FaultProxy` that also records each forwarded request's
  Range header and its time in flight (arrival to end of the response), so tests
  can tell header requests from tile requests and measure concurrency, and that
  can fail requests by *byte range* (the base proxy filters by path only), to
  make some tiles of one file fail permanently.
* `REQUEST_COUNTS`: requests seen by the proxy per scenario, printed at the end
  of the run by tests/stores/conftest.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from rasterio.windows import Window

from tests.cogfactory import TiffSpec, special_specs
from tests.servers.fault_proxy import Decision, FaultProxy

# 300 x 217, 64 x 32 tiles (5 x 7, partial edge tiles), 2 bands, internal mask, overviews 2 and 4.
COG_SPEC = TiffSpec(
    dtype="uint16", width=300, height=217, count=2, blockxsize=64, blockysize=32,
    mask=True, overviews=(2, 4),
)
LEVELS = (0, 1, 2)
STRIPED_SPEC = special_specs()["striped"]
"""uint16 300 x 217, 16-row strips, predictor 2, plain GTiff: async-tiff cannot read strips."""

HTTP_OPTIONS: dict[str, Any] = {"client_options": {"allow_http": True}}

REQUEST_COUNTS: dict[str, dict[str, Any]] = {}
"""scenario -> counters, filled by `record_requests`, printed in the terminal summary."""


def s3_options(server: Any, *, endpoint: str | None = None, **extra: Any) -> dict[str, Any]:
    """obstore S3 options (obstore 0.12 names) for the SeaweedFS test server or a proxy before
    it."""
    return {
        "endpoint": endpoint or server.endpoint,
        "region": server.region,
        "access_key_id": server.access_key,
        "secret_access_key": server.secret_key,
        "client_options": {"allow_http": True},
        **extra,
    }


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def read_async(url: str, overview_level: int = 0, **options: Any) -> np.ndarray:
    """Whole level through AsyncGeoTIFFReader (a fresh header fetch each time)."""
    from georeader import AsyncGeoTIFFReader

    async def go() -> np.ndarray:
        reader = await AsyncGeoTIFFReader.open(url, overview_level=overview_level, **options)
        return (await reader.load()).values

    return run(go())


def read_async_tiles(url: str, **options: Any) -> np.ndarray:
    """Full resolution, one concurrent read per tile: many small requests (fault tests)."""
    from georeader import AsyncGeoTIFFReader

    async def go() -> np.ndarray:
        reader = await AsyncGeoTIFFReader.open(url, **options)
        th, tw = reader.block_shape
        windows = [
            Window(c, r, min(tw, reader.width - c), min(th, reader.height - r))
            for r in range(0, reader.height, th)
            for c in range(0, reader.width, tw)
        ]
        parts = await asyncio.gather(*(reader.read_window(w) for w in windows))
        out = np.empty(reader.shape, reader.dtype)
        for w, part in zip(windows, parts, strict=True):
            r, c = int(w.row_off), int(w.col_off)
            out[:, r : r + int(w.height), c : c + int(w.width)] = part.values
        return out

    return run(go())


def read_dask(url: str, chunks: Any = 64, **kwargs: Any) -> np.ndarray:
    """daskcog.open(...).data.compute() on the threaded scheduler."""
    import daskcog

    arr = daskcog.open(url, chunks=chunks, **kwargs)
    return arr.data.compute(scheduler="threads")


def record_requests(scenario: str, proxy: FaultProxy | None, **extra: Any) -> dict[str, Any]:
    """Remember (and print) what the proxy saw in one scenario."""
    entry: dict[str, Any] = {}
    if proxy is not None:
        stats = proxy.stats()
        entry = {"requests": stats["requests_total"], "faults": dict(stats["faults"])}
        if isinstance(proxy, RangeLogProxy) and proxy.range_faults:
            entry["faults"]["range-status"] = proxy.range_faults
    entry.update(extra)
    REQUEST_COUNTS[scenario] = entry
    print(f"[requests] {scenario}: {entry}")
    return entry


# ------------------------------------------------------------------------------ proxy
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def parse_range(header: str | None) -> tuple[int, int | None] | None:
    """(start, end inclusive or None) of a single `bytes=a-b` range header."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m:
        return None
    return int(m.group(1)), (int(m.group(2)) if m.group(2) else None)


@dataclasses.dataclass
class Forwarded:
    """One request that reached `_forward` (recorded on arrival, completed at the end)."""

    method: str
    path: str
    range: str | None
    start: float
    """perf_counter() at arrival (before any injected latency)."""
    end: float | None = None
    """perf_counter() when the response was relayed (or the fault sent); None while in flight."""
    outcome: str = "in flight"


class RangeLogProxy(FaultProxy):
    """FaultProxy that records Range headers and request spans, and fails chosen byte ranges.

    `fail_ranges(intervals, status=503)`: every GET whose Range overlaps one of the
    inclusive byte intervals is answered `status` (permanently, until cleared).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._rl_lock = threading.Lock()
        self._forwarded: list[Forwarded] = []
        self._arrivals: dict[Any, float] = {}
        self._bad_ranges: list[tuple[int, int]] = []
        self._bad_status = 503
        self.range_faults = 0
        super().__init__(*args, **kwargs)

    # -- configuration -----------------------------------------------------------
    def fail_ranges(self, intervals: Iterable[tuple[int, int]], status: int = 503) -> None:
        with self._rl_lock:
            self._bad_ranges = [(int(a), int(b)) for a, b in intervals]
            self._bad_status = status

    def reset_counters(self) -> None:
        super().reset_counters()
        with self._rl_lock:
            self._forwarded.clear()
            self.range_faults = 0

    def reset(self, seed: int = 0) -> None:
        super().reset(seed)
        with self._rl_lock:
            self._bad_ranges = []

    # -- what it saw ---------------------------------------------------------------
    @property
    def forwarded(self) -> list[Forwarded]:
        with self._rl_lock:
            return list(self._forwarded)

    def gets(self, path: str | None = None) -> list[Forwarded]:
        return [f for f in self.forwarded if f.method == "GET" and (path is None or f.path == path)]

    def header_requests(self, header_bytes: int, path: str | None = None) -> int:
        """GETs whose range starts inside the header (before the first tile's bytes)."""
        n = 0
        for f in self.gets(path):
            r = parse_range(f.range)
            if r is None or r[0] < header_bytes:
                n += 1
        return n

    def concurrency(self) -> dict[str, float]:
        """Requests in flight: the maximum, and the mean over the span of all requests."""
        spans = [(f.start, f.end) for f in self.forwarded if f.end is not None]
        if not spans:
            return {"max": 0, "mean": 0.0, "wall": 0.0}
        events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
        current = peak = 0
        for _, step in events:
            current += step
            peak = max(peak, current)
        wall = max(e for _, e in spans) - min(s for s, _ in spans)
        busy = sum(e - s for s, e in spans)
        return {"max": peak, "mean": busy / wall if wall > 0 else float(peak), "wall": wall}

    # -- hooks into FaultProxy -------------------------------------------------------
    def _decide(self, method: str, path: str) -> Decision:
        # runs on the proxy's loop, in the connection's task, when a request arrives
        self._arrivals[asyncio.current_task()] = time.perf_counter()
        return super()._decide(method, path)

    async def _forward(self, req: Any, d: Decision, creader: Any, cwriter: Any, conn: Any) -> bool:
        start = self._arrivals.pop(asyncio.current_task(), time.perf_counter())
        rng = parse_range(req.header("range"))
        entry = Forwarded(req.method, req.path, req.header("range"), start)
        with self._rl_lock:
            # recorded on arrival: a client that got its answer finds its request counted
            self._forwarded.append(entry)
            bad, status = list(self._bad_ranges), self._bad_status
        if bad and req.method == "GET" and rng is not None:
            lo, hi = rng[0], rng[1] if rng[1] is not None else 1 << 62
            if any(lo <= b and a <= hi for a, b in bad):
                with self._rl_lock:
                    self.range_faults += 1
                self._record(req.method, req.path, f"range-status:{status}")
                fault = Decision(matches=True, action="status", status=status)
                try:
                    await self._send_fault_status(cwriter, req, fault, close=req.wants_close)
                finally:
                    self._done(entry, f"range-status:{status}")
                return not req.wants_close
        try:
            return await super()._forward(req, d, creader, cwriter, conn)
        finally:
            self._done(entry, "forwarded")

    def _done(self, entry: Forwarded, outcome: str) -> None:
        with self._rl_lock:
            entry.end = time.perf_counter()
            entry.outcome = outcome


def header_bytes(path: Any) -> int:
    """Bytes before the first tile of a local TIFF (what one header request must cover)."""
    from georeader import open_file

    opened = run(open_file(str(path)))
    starts = [
        o
        for ifd in opened.geotiff.tiff.ifds
        for o in (ifd.tile_offsets or ifd.strip_offsets or [])
        if o > 0
    ]
    return min(starts)


def tile_byte_ranges(path: Any, rows: Callable[[int], bool]) -> list[tuple[int, int]]:
    """Inclusive byte intervals of the full-resolution data tiles whose tile row passes `rows`."""
    from georeader import open_file

    opened = run(open_file(str(path)))
    ifd = opened.levels[0].data_ifd
    _th, tw = opened.levels[0].tile_shape
    nx = -(-opened.levels[0].width // tw)
    out = []
    for index, (offset, count) in enumerate(
        zip(ifd.tile_offsets, ifd.tile_byte_counts, strict=True)
    ):
        if count and rows(index // nx):
            out.append((int(offset), int(offset) + int(count) - 1))
    return out


def settle(count: Callable[[], int], quiet: float = 0.3, timeout: float = 15.0) -> int:
    """Wait until `count()` (e.g. a proxy's request counter) stops changing for `quiet` seconds.

    A compute that raises leaves its other chunk tasks running in the threaded
    scheduler's pool, still retrying; without this their requests would land in
    the next test's counters.
    """
    deadline = time.monotonic() + timeout
    last = count()
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = count()
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet:
            break
    return last


def elapsed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    try:
        return fn(), time.perf_counter() - t0
    except BaseException as exc:  # noqa: BLE001 - the caller inspects the error and the time
        return exc, time.perf_counter() - t0
