"""Start, steer, read and stop the benchmark range server (range_server.py) from a benchmark script.

Usage (from any benchmark; the server runs in its own process, so it never shares
the benchmark's GIL or cores' Python threads with the readers it serves):

    from benchmarks.servers import RangeServer

    with RangeServer(root_dir, latency_ms=50) as server:   # a free port on 127.0.0.1
        url = server.url_for("scene.tif")                   # http://127.0.0.1:PORT/scene.tif
        server.reset()                                      # zero the counters
        ...                                                 # read with daskcog, GDAL, ...
        stats = server.stats()                              # ServerStats(requests=.., ...)
        header = server.stats(header_bytes={"/scene.tif": 16384}).header_requests
        server.configure(latency_ms=0, bandwidth_mbps=200)  # change settings between runs

* ``stats()`` counts requests (GET + HEAD), GETs, HEADs, body bytes sent, the most
  requests in flight at once and (with ``header_bytes``) the GETs whose range
  starts inside a file's header (a dict per URL path, or one int for every file).
* GDAL's /vsicurl: pass ``server.url_for(name)`` after ``/vsicurl/``; set
  ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR`` so GDAL does not list the directory.
* obstore: ``obstore.store.HTTPStore.from_url(server.url, client_options={"allow_http": True})``
  (daskcog.open takes ``client_options`` the same way).
* The figure to state next to a floor: ``python benchmarks/servers/measure.py``
  (RESULTS.md, "The range server").
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

SCRIPT = Path(__file__).with_name("range_server.py")


@dataclass(frozen=True)
class ServerStats:
    requests: int
    gets: int
    heads: int
    bytes_sent: int
    max_in_flight: int
    connections: int
    errors: int
    header_requests: int | None = None  # only when stats(header_bytes=...) was asked


class RangeServer:
    """The range server in a child process; a context manager that stops it on exit."""

    def __init__(self, root: str | Path, *, latency_ms: float = 0.0, jitter_ms: float = 0.0,
                 bandwidth_mbps: float = 0.0, seed: int = 0, port: int = 0,
                 start_timeout: float = 20.0) -> None:
        self.root = Path(root).resolve()
        cmd = [sys.executable, str(SCRIPT), "--root", str(self.root), "--port", str(port),
               "--latency-ms", str(latency_ms), "--jitter-ms", str(jitter_ms),
               "--bandwidth-mbps", str(bandwidth_mbps), "--seed", str(seed), "--exit-on-stdin-eof"]
        # its stdin is a pipe only we hold: when this process ends (even by os._exit), the server
        # does
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
        line: list[str] = []
        reader = threading.Thread(
            target=lambda: line.append(self._proc.stdout.readline()), daemon=True
        )
        reader.start()
        reader.join(start_timeout)
        if not line or not line[0].strip():
            self._proc.kill()
            raise RuntimeError(f"the benchmark range server did not start within {start_timeout} s")
        self.port: int = json.loads(line[0])["port"]
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The server process's id."""
        return self._proc.pid

    def url_for(self, relpath: str) -> str:
        return f"{self.url}/{urllib.parse.quote(relpath.lstrip('/'))}"

    def _call(self, path: str, **query: object) -> dict:
        qs = urllib.parse.urlencode(query)
        with urllib.request.urlopen(f"{self.url}/_bench/{path}?{qs}", timeout=30) as resp:
            return json.loads(resp.read())

    def reset(self) -> None:
        """Zero the counters and the range log."""
        self._call("reset")

    def configure(self, *, latency_ms: float | None = None, jitter_ms: float | None = None,
                  bandwidth_mbps: float | None = None, seed: int | None = None) -> dict:
        given = {"latency_ms": latency_ms, "jitter_ms": jitter_ms,
                 "bandwidth_mbps": bandwidth_mbps, "seed": seed}
        return self._call("config", **{k: v for k, v in given.items() if v is not None})

    def ranges(self) -> list[tuple[str, int, int]]:
        """Every GET since the last reset: (URL path, start, end exclusive)."""
        return [tuple(r) for r in self._call("stats", log=1)["log"]]

    def stats(self, header_bytes: int | dict[str, int] | None = None) -> ServerStats:
        raw = self._call("stats", log=int(header_bytes is not None))
        header = None
        if header_bytes is not None:
            def limit(path: str) -> int:
                return header_bytes if isinstance(header_bytes, int) else header_bytes.get(path, 0)
            header = sum(1 for path, start, _ in raw["log"] if start < limit(path))
        return ServerStats(raw["requests"], raw["gets"], raw["heads"], raw["bytes_sent"],
                           raw["max_in_flight"], raw["connections"], raw["errors"], header)

    def stop(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> RangeServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
