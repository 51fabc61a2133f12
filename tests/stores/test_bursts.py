"""A burst of reads against an origin with a small listen backlog succeeds, more slowly.

Python's ThreadingHTTPServer listens with a backlog of 5: a burst of concurrent
`read_window` calls overflows it, and the kernel drops connections. Measured
before issue 11 (backlog 1, 500 reads, 0.5 s per request): failed after 30 s
("error sending request"). Now refused and reset connections are transient
(retried with backoff by the one retry layer) and `max_concurrency` bounds the
requests in flight per store: with 8 the same burst succeeded in 32 s (500 x
0.5 s / 8); with 32 a connection whose handshake the kernel dropped still waited
out obstore's 30 s request timeout (README, Known limits).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
from rasterio.windows import Window

from georeader import AsyncGeoTIFFReader, RasterioReader
from tests.georeader.hostile.build import write_base
from tests.servers.http_server import RangeHTTPServer

BURST = 300
LATENCY = 0.05


@pytest.fixture
def fragile_origin(tmp_path: Path):
    write_base(tmp_path / "cog.tif", compress="deflate", size=512, overviews=False)
    with RangeHTTPServer(tmp_path, backlog=1) as server:
        server.delay_seconds = LATENCY
        yield server, tmp_path / "cog.tif"


def _burst(url: str, **options) -> tuple[list[np.ndarray], float]:
    async def main() -> list[np.ndarray]:
        reader = await AsyncGeoTIFFReader.open(url, client_options={"allow_http": True}, **options)
        windows = [Window((i * 37) % 448, (i * 53) % 448, 64, 64) for i in range(BURST)]
        tensors = await asyncio.gather(*(reader.read_window(w) for w in windows))
        return [t.values for t in tensors]

    started = time.monotonic()
    arrays = asyncio.run(main())
    return arrays, time.monotonic() - started


@pytest.mark.parametrize("max_concurrency", [None, 8])
@pytest.mark.timeout(120)
def test_burst_against_a_small_backlog_succeeds(fragile_origin, max_concurrency) -> None:
    server, path = fragile_origin
    options = {} if max_concurrency is None else {"max_concurrency": max_concurrency}
    arrays, seconds = _burst(server.url_for("cog.tif"), **options)
    with RasterioReader(path) as ref:
        for i, got in enumerate(arrays):
            window = Window((i * 37) % 448, (i * 53) % 448, 64, 64)
            np.testing.assert_array_equal(got, ref.read_window(window).values)
    print(f"\n{BURST} concurrent reads, backlog 1, {LATENCY * 1000:.0f} ms per request, "
          f"max_concurrency={max_concurrency}: "
          f"{seconds:.2f} s, {len(server.requests('GET'))} GETs")
    assert seconds < 60


def test_refused_connections_are_retried_then_a_bounded_typed_error(tmp_path: Path) -> None:
    """An origin that went away: refused connections are transient (retried with backoff), and
    the read fails with StoreReadError after the policy's attempts, each range tried `attempts`
    times (one retry layer), within its time bound."""
    from georeader import StoreReadError
    from georeader.io import RetryPolicy

    write_base(tmp_path / "cog.tif", compress="deflate")
    server = RangeHTTPServer(tmp_path)
    url = server.url_for("cog.tif")

    async def main() -> None:
        reader = await AsyncGeoTIFFReader.open(url, client_options={"allow_http": True})
        reader.retry = RetryPolicy(attempts=3, backoff=0.05, total_seconds=5)
        server.stop()
        await reader.read_window(Window(0, 0, 64, 64))

    started = time.monotonic()
    with pytest.raises(StoreReadError, match=r"gave up after 3 attempt") as info:
        asyncio.run(main())
    assert url in str(info.value)
    assert time.monotonic() - started < 5
