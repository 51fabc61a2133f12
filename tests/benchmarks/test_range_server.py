"""The benchmark range server speaks enough HTTP for obstore and GDAL, and counts what it serves.

Behaviour only: its speed is measured by benchmarks/servers/measure.py, never here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from benchmarks.servers import RangeServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    root = tmp_path_factory.mktemp("bench-root")
    data = os.urandom(3 << 20)
    (root / "blob.bin").write_bytes(data)
    return root, data


@pytest.fixture
def server(served: tuple[Path, bytes]):
    with RangeServer(served[0]) as srv:
        yield srv


def _get(url: str, range_: str | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, method=method, headers={"Range": range_} if range_ else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_ranges_whole_file_head_and_errors(server: RangeServer, served: tuple[Path, bytes]) -> None:
    data = served[1]
    url = server.url_for("blob.bin")
    status, headers, body = _get(url, "bytes=10-19")
    assert (status, body, headers["Content-Range"]) == (
        206,
        data[10:20],
        f"bytes 10-19/{len(data)}",
    )
    assert _get(url, "bytes=-5")[2] == data[-5:]
    assert _get(url, f"bytes={len(data) - 3}-")[2] == data[-3:]
    assert _get(url, f"bytes=0-{len(data) * 2}")[2] == data  # an end past the file is clamped
    assert _get(url)[2] == data
    status, headers, body = _get(url, method="HEAD")
    assert (status, int(headers["Content-Length"]), body) == (200, len(data), b"")
    assert "ETag" in headers and "Last-Modified" in headers
    assert _get(url, "bytes=0-1,5-6")[0] == 416
    assert _get(url, f"bytes={len(data)}-")[0] == 416
    assert _get(server.url_for("missing.bin"))[0] == 404
    assert _get(server.url + "/../etc/passwd")[0] == 404


def test_counters_and_header_requests(server: RangeServer, served: tuple[Path, bytes]) -> None:
    url = server.url_for("blob.bin")
    _get(url, "bytes=0-99")
    server.reset()
    _get(url, "bytes=0-99")
    _get(url, "bytes=1000000-1999999")
    _get(url, method="HEAD")
    st = server.stats(header_bytes={"/blob.bin": 16384})
    assert (st.requests, st.gets, st.heads, st.bytes_sent) == (3, 2, 1, 100 + 1_000_000)
    assert st.header_requests == 1
    assert server.ranges() == [("/blob.bin", 0, 100), ("/blob.bin", 1_000_000, 2_000_000)]


def test_obstore_reads_through_it(server: RangeServer, served: tuple[Path, bytes]) -> None:
    import obstore
    from obstore.store import HTTPStore

    store = HTTPStore.from_url(server.url, client_options={"allow_http": True})
    got = obstore.get_ranges(store, "blob.bin", starts=[0, 2 << 20], ends=[100, (2 << 20) + 5])
    assert [bytes(b) for b in got] == [served[1][:100], served[1][2 << 20:(2 << 20) + 5]]
    assert obstore.head(store, "blob.bin")["size"] == len(served[1])


def test_latency_and_bandwidth_are_injected(server: RangeServer) -> None:
    url = server.url_for("blob.bin")
    server.configure(latency_ms=100)
    t0 = time.perf_counter()
    _get(url, "bytes=0-9")
    assert time.perf_counter() - t0 >= 0.09
    server.configure(latency_ms=0, bandwidth_mbps=20)
    t0 = time.perf_counter()
    _get(url, "bytes=0-2097151")  # 2 MiB at 20 MB/s: >= 0.1 s
    assert time.perf_counter() - t0 >= 0.09


def test_server_ends_with_the_process_that_started_it(served: tuple[Path, bytes]) -> None:
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from benchmarks.servers import RangeServer
        srv = RangeServer({str(served[0])!r})
        print(srv.pid, flush=True)
        os._exit(0)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    pytest.fail("the range server outlived the process that started it")
