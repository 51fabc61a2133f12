"""A static HTTP/1.1 range server for latency benchmarks, fast enough not to be what is measured.

Run it in its own process (``benchmarks.servers.RangeServer`` does that for a benchmark):

    python benchmarks/servers/range_server.py --root DIR [--port 0] [--latency-ms 50]
        [--jitter-ms 0] [--bandwidth-mbps 0] [--seed 0]

It prints one JSON line ``{"port": N}`` on stdout once it listens on 127.0.0.1.

Why it exists: the project's test servers (``http.server`` threads, SeaweedFS behind a
Python proxy) move 100-150 MB/s on a 2-core machine, so a "50 ms store" benchmark
through them measured the server. This one parses a request in Python but sends
the body with ``loop.sendfile`` (the kernel copies page cache to the socket), so
the Python cost per request is a few tens of microseconds whatever its size.

What a benchmark can set, and why each is there:

* ``latency`` (plus ``jitter``): added once to every request before the response
  starts, like an object store's time to first byte. This kernel has no netem, so
  the server injects it. Jitter is uniform in ``[latency - jitter, latency + jitter]``
  from a seeded generator, so runs repeat.
* ``bandwidth``: an optional cap on the server's total send rate (all connections
  share it, like one link), so "bytes / bandwidth" is a floor a benchmark can state.
* the counters: requests, GETs, HEADs, body bytes sent, most requests in flight at
  once, and a bounded log of every GET's range, read and reset over HTTP at
  ``/_bench/stats`` and ``/_bench/reset`` (not counted, no latency). Settings can
  change at run time with ``/_bench/config?latency_ms=..&jitter_ms=..&bandwidth_mbps=..``.

HTTP it speaks: ``GET`` and ``HEAD``, keep-alive (HTTP/1.1 default), one ``Range:
bytes=a-b`` / ``a-`` / ``-n`` per request (206 with ``Content-Range``), a whole file
without ``Range`` (200), ``416`` for an unsatisfiable or multi-range header, ``404``,
``405``. ``ETag``, ``Last-Modified`` and ``Accept-Ranges`` as obstore, GDAL and
fsspec expect. No conditional requests: benchmark files do not change (each file is opened
once and kept open, so a file replaced on disk is still served from the old one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import json
import os
import random
import re
import resource
import socket
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"
LOG_LIMIT = 1_000_000  # GET ranges kept for /_bench/stats?log=1; past it only the counters grow
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_PACE_SLICE = 256 * 1024  # bytes per sendfile call when a bandwidth cap is on
_SMALL = 64 * 1024  # bodies up to this size are copied, larger ones go through sendfile


@dataclass
class Settings:
    latency_s: float = 0.0
    jitter_s: float = 0.0
    bandwidth_bps: float = 0.0  # 0: no cap
    rng: random.Random = field(default_factory=random.Random)

    def delay(self) -> float:
        if not self.jitter_s:
            return self.latency_s
        return max(0.0, self.latency_s + self.rng.uniform(-self.jitter_s, self.jitter_s))


@dataclass
class Counters:
    requests: int = 0
    gets: int = 0
    heads: int = 0
    bytes_sent: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    connections: int = 0
    errors: int = 0
    log: list[tuple[str, int, int]] = field(default_factory=list)  # (path, start, end exclusive)
    log_dropped: int = 0

    def as_dict(self, with_log: bool) -> dict[str, object]:
        out: dict[str, object] = {
            k: getattr(self, k)
            for k in ("requests", "gets", "heads", "bytes_sent", "in_flight", "max_in_flight",
                      "connections", "errors", "log_dropped")
        }
        if with_log:
            out["log"] = self.log
        return out


class Pacer:
    """The bandwidth cap: every slice books the link for ``size / rate`` seconds, in order."""

    def __init__(self) -> None:
        self._free_at = 0.0

    async def book(self, size: int, rate: float) -> None:
        now = time.monotonic()
        start = max(now, self._free_at)
        self._free_at = start + size / rate
        if start > now:
            await asyncio.sleep(start - now)


class Server:
    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root.resolve()
        self.settings = settings
        self.counters = Counters()
        self.pacer = Pacer()
        self._files: dict[str, tuple[IO[bytes], int, str, str]] = {}

    # ------------------------------------------------------------------ files
    def _open(self, url_path: str) -> tuple[IO[bytes], int, str, str] | None:
        """An open file per path, kept: an open() per request would cost more than the parse."""
        cached = self._files.get(url_path)
        if cached is not None:
            return cached
        path = (self.root / url_path.lstrip("/")).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        f = open(path, "rb")  # noqa: SIM115 - kept open for the server's life
        st = os.fstat(f.fileno())
        etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
        entry = (f, st.st_size, etag, email.utils.formatdate(st.st_mtime, usegmt=True))
        self._files[url_path] = entry
        return entry

    # ------------------------------------------------------------------ connection
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.counters.connections += 1
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except Exception:  # noqa: BLE001 - one bad connection must not stop the server
            self.counters.errors += 1
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed its keep-alive connection
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = (lines[0].split(" ") + ["", ""])[:3]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        body_len = int(headers.get("content-length") or 0)
        if body_len:
            await reader.readexactly(body_len)
        conn = headers.get("connection", "").lower()
        keep = conn != "close" if version == "HTTP/1.1" else conn == "keep-alive"
        split = urllib.parse.urlsplit(target)
        path = urllib.parse.unquote(split.path)
        if path.startswith("/_bench/"):
            await self._control(writer, path, urllib.parse.parse_qs(split.query), keep)
            return keep
        c = self.counters
        c.requests += 1
        c.in_flight += 1
        c.max_in_flight = max(c.max_in_flight, c.in_flight)
        try:
            delay = self.settings.delay()
            if delay:
                await asyncio.sleep(delay)
            await self._respond(writer, method, path, headers.get("range"), keep)
        finally:
            c.in_flight -= 1
        return keep

    async def _respond(self, writer: asyncio.StreamWriter, method: str, path: str,
                       range_header: str | None, keep: bool) -> None:
        if method not in ("GET", "HEAD"):
            await self._simple(writer, 405, keep, {"Allow": "GET, HEAD"})
            return
        entry = self._open(path)
        if entry is None:
            await self._simple(writer, 404, keep)
            return
        f, size, etag, modified = entry
        extra = {"ETag": etag, "Last-Modified": modified, "Accept-Ranges": "bytes",
                 "Content-Type": "application/octet-stream"}
        start, end, status = 0, size, 200
        if range_header is not None:
            parsed = _parse_range(range_header.replace(" ", ""), size)
            if parsed is None:
                await self._simple(writer, 416, keep, {"Content-Range": f"bytes */{size}"})
                return
            start, end = parsed
            status = 206
            extra["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        head = _head(status, end - start, keep, extra)
        c = self.counters
        if method == "HEAD":
            c.heads += 1
            writer.write(head)
            await writer.drain()
            return
        c.gets += 1
        if len(c.log) < LOG_LIMIT:
            c.log.append((path, start, end))
        else:
            c.log_dropped += 1
        if end - start <= _SMALL and not self.settings.bandwidth_bps:
            # one write for head and body: a sendfile call costs more than a small copy
            writer.write(head + os.pread(f.fileno(), end - start, start))
            await writer.drain()
        else:
            writer.write(head)
            await self._send_body(writer, f, start, end)
        c.bytes_sent += end - start

    async def _send_body(
        self, writer: asyncio.StreamWriter, f: IO[bytes], start: int, end: int
    ) -> None:
        loop = asyncio.get_running_loop()
        rate = self.settings.bandwidth_bps
        if not rate:
            await loop.sendfile(writer.transport, f, start, end - start)
            return
        pos = start
        while pos < end:
            n = min(_PACE_SLICE, end - pos)
            await self.pacer.book(n, rate)
            await loop.sendfile(writer.transport, f, pos, n)
            pos += n

    async def _simple(self, writer: asyncio.StreamWriter, status: int, keep: bool,
                      extra: dict[str, str] | None = None, body: bytes = b"") -> None:
        writer.write(
            _head(status, len(body), keep, {"Content-Type": "text/plain", **(extra or {})}) + body
        )
        await writer.drain()

    async def _control(self, writer: asyncio.StreamWriter, path: str,
                       query: dict[str, list[str]], keep: bool) -> None:
        s = self.settings
        if path == "/_bench/reset":
            self.counters = Counters(in_flight=self.counters.in_flight)
            out: dict[str, object] = {"ok": True}
        elif path == "/_bench/config":
            if "latency_ms" in query:
                s.latency_s = float(query["latency_ms"][0]) / 1000
            if "jitter_ms" in query:
                s.jitter_s = float(query["jitter_ms"][0]) / 1000
            if "bandwidth_mbps" in query:
                s.bandwidth_bps = float(query["bandwidth_mbps"][0]) * 1e6
            if "seed" in query:
                s.rng.seed(int(query["seed"][0]))
            out = {"latency_ms": s.latency_s * 1000, "jitter_ms": s.jitter_s * 1000,
                   "bandwidth_mbps": s.bandwidth_bps / 1e6}
        elif path == "/_bench/stats":
            out = self.counters.as_dict(with_log=query.get("log", ["0"])[0] == "1")
        else:
            await self._simple(writer, 404, keep)
            return
        await self._simple(writer, 200, keep, {"Content-Type": "application/json"},
                           json.dumps(out).encode())


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` -> ``(a, b + 1)`` clamped to the file; None when unsatisfiable or
    multi-range."""
    m = _RANGE.match(header)
    if m is None or size == 0:
        return None
    a, b = m.groups()
    if a == "":
        if b == "" or int(b) == 0:
            return None
        return max(0, size - int(b)), size
    start = int(a)
    end = size if b == "" else min(int(b) + 1, size)
    if start >= size or end <= start:
        return None
    return start, end


_REASONS = {200: "OK", 206: "Partial Content", 404: "Not Found", 405: "Method Not Allowed",
            416: "Range Not Satisfiable"}


def _head(status: int, length: int, keep: bool, extra: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}", f"Content-Length: {length}",
             f"Connection: {'keep-alive' if keep else 'close'}"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def serve(root: Path, port: int, settings: Settings, watch_stdin: bool) -> None:
    server = Server(root, settings)
    listener = await asyncio.start_server(server.handle, HOST, port, backlog=4096, limit=65536)
    bound = listener.sockets[0].getsockname()[1]
    print(json.dumps({"port": bound}), flush=True)
    loop = asyncio.get_running_loop()
    async with listener:
        if watch_stdin:
            # the launcher holds our stdin: EOF means it is gone, so no server outlives its
            # benchmark
            await loop.run_in_executor(None, sys.stdin.buffer.read)
        else:
            await listener.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument(
        "--bandwidth-mbps", type=float, default=0.0, help="MB/s (1e6 bytes), 0: no cap"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="stop when stdin closes (the launcher's way to tie the server to its life)",
    )
    args = parser.parse_args(argv)
    # thousands of concurrent keep-alive connections in the fan-out benchmark
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    settings = Settings(args.latency_ms / 1000, args.jitter_ms / 1000, args.bandwidth_mbps * 1e6,
                        random.Random(args.seed))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.root, args.port, settings, args.exit_on_stdin_eof))
    sys.exit(0)


if __name__ == "__main__":
    main()
