"""A fault-injecting HTTP/1.1 reverse proxy for tests (loopback only).

``FaultProxy(upstream_host, upstream_port)`` listens on ``127.0.0.1:<free port>``
and forwards every request, byte for byte, to the upstream server.  It runs an
asyncio loop in its own daemon thread; every setter is thread-safe.

Requests are forwarded unchanged - in particular the ``Host`` header, which the
client signed (SigV4) with the *proxy's* address: S3 servers verify signatures
against the Host header they receive, so signed requests stay valid through the
proxy.  No ``X-Forwarded-*`` headers are added (SeaweedFS would use them to
rebuild the signed host and reject the signature).

Faults (see :meth:`FaultProxy.configure`), applied to requests that match the
optional ``path_pattern`` / ``methods`` filter:

* ``latency_ms`` / ``jitter_ms``: sleep ``latency +- uniform(jitter)`` before forwarding;
* ``fail_first`` / ``fail_rate`` + ``fail_status`` (503, 500, 429, 403, ...): answer
  with that status and an S3-style XML error body, without contacting upstream;
* ``reset_first`` / ``reset_rate``: abort the client connection with a TCP RST,
  without answering;
* ``truncate_first`` / ``truncate_rate`` (+ ``truncate_bytes``): send the upstream
  response headers (full ``Content-Length``) but only part of the body, then close;
* ``bandwidth_bps``: cap the rate of response bodies (shared by all connections);
* ``require_header`` (``(name, value)``): a matching request without that header
  (value compared case-insensitively) is answered 403 AccessDenied, like a
  requester-pays bucket asked without ``x-amz-request-payer: requester``.

The ``*_first`` counts are consumed by matching requests in arrival order; the
``*_rate`` draws use a ``random.Random(seed)``.  A request gets at most one of
reset / status / truncate, checked in that order.

Counters: ``requests_total``, ``requests_by_path`` (Counter of URL paths),
``faults`` (Counter: ``"status"``, ``"reset"``, ``"truncate"``), ``log`` (list of
``(method, path, outcome)`` with outcome ``"forwarded:<status>"``,
``"status:<code>"``, ``"reset"``, ``"truncate:<status>"`` or ``"error:..."``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

__all__ = ["FaultProxy", "FaultConfig"]

HOST = "127.0.0.1"
_CHUNK = 64 * 1024
_MAX_HEAD = 1024 * 1024
_MAX_BUFFERED_BODY = 64 * 1024 * 1024

_S3_CODES = {
    400: "BadRequest",
    403: "AccessDenied",
    404: "NoSuchKey",
    429: "SlowDown",
    500: "InternalError",
    502: "BadGateway",
    503: "SlowDown",
    504: "GatewayTimeout",
}


@dataclasses.dataclass
class FaultConfig:
    """The proxy's fault settings; ``FaultProxy.configure`` updates these fields."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    fail_status: int = 503
    fail_first: int = 0
    fail_rate: float = 0.0
    retry_after: str | None = None
    reset_first: int = 0
    reset_rate: float = 0.0
    truncate_first: int = 0
    truncate_rate: float = 0.0
    truncate_bytes: int | None = None  # body bytes sent before the cut; None: half (CL) / 0
    bandwidth_bps: float | None = None
    require_header: tuple[str, str] | None = None
    path_pattern: str | None = None  # regex, re.search()ed against the URL path
    methods: frozenset[str] | None = None  # e.g. {"GET"}; None: all

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method.upper() not in self.methods:
            return False
        return self.path_pattern is None or re.search(self.path_pattern, path) is not None


_FIELDS = {f.name for f in dataclasses.fields(FaultConfig)}


@dataclasses.dataclass
class Decision:
    matches: bool
    delay: float = 0.0
    action: str | None = None  # "reset" | "status" | None
    status: int = 0
    retry_after: str | None = None


class _Cut(Exception):
    """The truncation budget is spent: stop sending and close the client connection."""


class _Request:
    __slots__ = ("head", "method", "target", "path", "headers", "version")

    def __init__(self, head: bytes) -> None:
        self.head = head
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise ValueError(f"bad request line {lines[0]!r}")
        self.method, self.target, self.version = parts
        self.path = urllib.parse.urlsplit(self.target).path or "/"
        self.headers = _parse_headers(lines[1:])

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def wants_close(self) -> bool:
        conn = (self.header("connection") or "").lower()
        return "close" in conn or (self.version == "HTTP/1.0" and "keep-alive" not in conn)


def _parse_headers(lines: Iterable[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        if not line or ":" not in line:
            continue
        k, v = line.split(":", 1)
        k = k.strip().lower()
        v = v.strip()
        headers[k] = f"{headers[k]}, {v}" if k in headers else v
    return headers


def _parse_status(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    return int(parts[1]), _parse_headers(lines[1:])


class FaultProxy:
    """Fault-injecting reverse proxy on ``127.0.0.1:<free port>``.

    Public API: ``url`` ("http://127.0.0.1:PORT"), ``port``, ``host``,
    ``upstream`` ((host, port)), :meth:`configure`, :meth:`clear_faults`,
    :meth:`reset_counters`, :meth:`reset` (both), :meth:`stats`,
    ``requests_total``, ``requests_by_path``, ``faults``, ``log``,
    :meth:`stop` (idempotent; also a context manager).
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, seed: int = 0,
                 connect_timeout: float = 5.0) -> None:
        if upstream_host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("FaultProxy only forwards to loopback upstreams")
        self.upstream = (upstream_host, int(upstream_port))
        self.host = HOST
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._cfg = FaultConfig()
        self._rng = random.Random(seed)
        self._requests_total = 0
        self._by_path: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._log: list[tuple[str, str, str]] = []
        self._bw_next = 0.0
        self._conn_tasks: set[asyncio.Task] = set()
        self._stopped = False

        t0 = time.monotonic()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run_loop, name="FaultProxy", daemon=True
        )
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        try:
            self._server = fut.result(timeout=10)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            raise
        self.port: int = self._server.sockets[0].getsockname()[1]
        self._thread.name = f"FaultProxy:{self.port}->{upstream_port}"
        self.startup_seconds = time.monotonic() - t0

    # ------------------------------------------------------------------ public
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def configure(self, **kwargs: Any) -> None:
        """Update fault settings (only the given ones); thread-safe.

        Keywords: ``latency_ms``, ``jitter_ms``, ``fail_status``, ``fail_first``,
        ``fail_rate``, ``retry_after`` (Retry-After header value for injected
        statuses), ``reset_first``, ``reset_rate``, ``truncate_first``,
        ``truncate_rate``, ``truncate_bytes``, ``bandwidth_bps`` (None: unlimited),
        ``require_header`` ((name, value): 403 without it), ``path_pattern`` (regex on
        the URL path), ``methods`` (iterable of HTTP
        methods), and ``seed`` (re-seeds the RNG used for rates and jitter).
        """
        unknown = set(kwargs) - _FIELDS - {"seed"}
        if unknown:
            raise TypeError(f"unknown FaultProxy setting(s): {sorted(unknown)}")
        if "methods" in kwargs and kwargs["methods"] is not None:
            kwargs["methods"] = frozenset(m.upper() for m in kwargs["methods"])
        if kwargs.get("path_pattern") is not None:
            re.compile(kwargs["path_pattern"])
        for k in ("fail_rate", "reset_rate", "truncate_rate"):
            if k in kwargs and not 0.0 <= kwargs[k] <= 1.0:
                raise ValueError(f"{k} must be within [0, 1]")
        with self._lock:
            if "seed" in kwargs:
                self._rng = random.Random(kwargs.pop("seed"))
            self._cfg = dataclasses.replace(self._cfg, **kwargs)
            if "bandwidth_bps" in kwargs:
                self._bw_next = 0.0

    @property
    def config(self) -> FaultConfig:
        with self._lock:
            return dataclasses.replace(self._cfg)

    def clear_faults(self) -> None:
        """Back to a transparent proxy (no latency, faults or bandwidth cap)."""
        with self._lock:
            self._cfg = FaultConfig()
            self._bw_next = 0.0

    def reset_counters(self) -> None:
        with self._lock:
            self._requests_total = 0
            self._by_path.clear()
            self._faults.clear()
            self._log.clear()

    def reset(self, seed: int = 0) -> None:
        """``clear_faults()`` + ``reset_counters()`` + re-seed the RNG."""
        with self._lock:
            self._cfg = FaultConfig()
            self._rng = random.Random(seed)
            self._bw_next = 0.0
        self.reset_counters()

    @property
    def requests_total(self) -> int:
        with self._lock:
            return self._requests_total

    @property
    def requests_by_path(self) -> Counter:
        with self._lock:
            return Counter(self._by_path)

    @property
    def faults(self) -> Counter:
        with self._lock:
            return Counter(self._faults)

    @property
    def log(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return list(self._log)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests_total": self._requests_total,
                "requests_by_path": dict(self._by_path),
                "faults": dict(self._faults),
                "faults_total": sum(self._faults.values()),
            }

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<FaultProxy {self.url} -> {self.upstream[0]}:{self.upstream[1]}>"

    # ------------------------------------------------------------------ loop
    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    async def _start(self) -> asyncio.AbstractServer:
        return await asyncio.start_server(self._handle, HOST, 0, limit=_MAX_HEAD)

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = list(self._conn_tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    # ------------------------------------------------------------------ decisions
    def _decide(self, method: str, path: str) -> Decision:
        with self._lock:
            self._requests_total += 1
            self._by_path[path] += 1
            cfg = self._cfg
            if not cfg.matches(method, path):
                return Decision(matches=False)
            d = Decision(matches=True)
            if cfg.latency_ms or cfg.jitter_ms:
                jitter = self._rng.uniform(-cfg.jitter_ms, cfg.jitter_ms) if cfg.jitter_ms else 0
                d.delay = max(0.0, cfg.latency_ms + jitter) / 1000.0
            if cfg.reset_first > 0:
                self._cfg = cfg = dataclasses.replace(cfg, reset_first=cfg.reset_first - 1)
                d.action = "reset"
            elif cfg.reset_rate and self._rng.random() < cfg.reset_rate:
                d.action = "reset"
            elif cfg.fail_first > 0:
                self._cfg = cfg = dataclasses.replace(cfg, fail_first=cfg.fail_first - 1)
                d.action = "status"
            elif cfg.fail_rate and self._rng.random() < cfg.fail_rate:
                d.action = "status"
            if d.action == "status":
                d.status = cfg.fail_status
                d.retry_after = cfg.retry_after
            if d.action:
                self._faults[d.action] += 1
            return d

    def _lacks_required_header(self, req: _Request) -> bool:
        with self._lock:
            required = self._cfg.require_header
        if required is None:
            return False
        name, value = required
        return (req.header(name) or "").strip().lower() != value.lower()

    def _take_truncate(self) -> int | None:
        """Called for a matching response with a body: bytes to send, or None (no cut)."""
        with self._lock:
            cfg = self._cfg
            take = False
            if cfg.truncate_first > 0:
                self._cfg = dataclasses.replace(cfg, truncate_first=cfg.truncate_first - 1)
                take = True
            elif cfg.truncate_rate and self._rng.random() < cfg.truncate_rate:
                take = True
            if not take:
                return None
            self._faults["truncate"] += 1
            return -1 if cfg.truncate_bytes is None else max(0, int(cfg.truncate_bytes))

    def _bandwidth(self) -> float | None:
        with self._lock:
            bw = self._cfg.bandwidth_bps
        return bw if bw and bw > 0 else None

    def _record(self, method: str, path: str, outcome: str) -> None:
        with self._lock:
            self._log.append((method, path, outcome))

    # ------------------------------------------------------------------ connection
    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conn_tasks.add(task)
        _nodelay(cwriter)
        conn = _Conn()
        try:
            while True:
                try:
                    head = await creader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    break  # client closed the connection (between requests)
                except asyncio.LimitOverrunError:
                    await self._send_simple(cwriter, 431, b"request head too large\n", close=True)
                    break
                try:
                    req = _Request(head)
                except ValueError:
                    await self._send_simple(cwriter, 400, b"bad request\n", close=True)
                    break
                d = self._decide(req.method, req.path)
                if d.matches and self._lacks_required_header(req):
                    d = Decision(matches=True, action="status", status=403)
                    with self._lock:
                        self._faults["missing-header"] += 1
                if d.delay:
                    await asyncio.sleep(d.delay)
                if d.action == "reset":
                    self._record(req.method, req.path, "reset")
                    _rst(cwriter)
                    return
                if d.action == "status":
                    self._record(req.method, req.path, f"status:{d.status}")
                    expect = (req.header("expect") or "").lower() == "100-continue"
                    close = req.wants_close or expect
                    if not expect:
                        await _read_body(creader, req, sink=None)
                    await self._send_fault_status(cwriter, req, d, close=close)
                    if close:
                        break
                    continue
                keep_going = await self._forward(req, d, creader, cwriter, conn)
                if not keep_going:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            conn.drop()
            _close(cwriter)
            if task is not None:
                self._conn_tasks.discard(task)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        r, w = await asyncio.wait_for(
            asyncio.open_connection(*self.upstream, limit=_MAX_HEAD), self.connect_timeout
        )
        _nodelay(w)
        return r, w

    async def _forward(self, req: _Request, d: Decision, creader, cwriter, conn: _Conn) -> bool:
        """Forward one request, relay the answer; return whether to keep the client connection."""
        expect = (req.header("expect") or "").lower() == "100-continue"
        try:
            declared = int(req.header("content-length") or 0)
        except ValueError:
            declared = 0
        # Bodies are buffered (so a request can be re-sent on a fresh upstream
        # connection when a pooled one turns out stale), except large ones and
        # those behind "Expect: 100-continue", which are streamed.
        stream = expect or declared > _MAX_BUFFERED_BODY
        body: bytes | None = None
        if not stream:
            body = await _read_body(creader, req, sink=bytearray())
        reused = conn.up is not None
        if conn.up is not None and (conn.up[0].at_eof() or conn.up[1].is_closing()):
            conn.drop()
            reused = False
        if conn.up is None:
            try:
                conn.up = await self._connect()
            except (TimeoutError, OSError) as exc:
                self._record(req.method, req.path, f"error:{type(exc).__name__}")
                await self._send_simple(cwriter, 502, b"upstream connection failed\n", close=True)
                return False
        ureader, uwriter = conn.up

        # -- send the request (retry once on a stale keep-alive upstream connection)
        for attempt in (0, 1):
            try:
                uwriter.write(req.head)
                if body:
                    uwriter.write(body)
                await uwriter.drain()
                body_sent = body is not None
                if not body_sent and not expect:
                    await _read_body(creader, req, sink=uwriter)
                    body_sent = True
                rhead = None
                while True:
                    rhead = await ureader.readuntil(b"\r\n\r\n")
                    status, rheaders = _parse_status(rhead)
                    if 100 <= status < 200 and status != 101:
                        cwriter.write(rhead)
                        await cwriter.drain()
                        if status == 100 and not body_sent:
                            await _read_body(creader, req, sink=uwriter)
                            await uwriter.drain()
                            body_sent = True
                        continue
                    break
                break
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                partial = getattr(exc, "partial", b"")
                conn.drop()
                if attempt == 0 and reused and not partial and body is not None:
                    conn.up = await self._connect()
                    ureader, uwriter = conn.up
                    reused = False
                    continue
                self._record(req.method, req.path, f"error:{type(exc).__name__}")
                await self._send_simple(cwriter, 502, b"upstream connection failed\n", close=True)
                return False

        # -- relay the response
        no_body = req.method == "HEAD" or status in (204, 304) or 100 <= status < 200
        te = (rheaders.get("transfer-encoding") or "").lower()
        cl = rheaders.get("content-length")
        upstream_close = "close" in (rheaders.get("connection") or "").lower()
        if no_body:
            kind, length = "none", 0
        elif "chunked" in te:
            kind, length = "chunked", None
        elif cl is not None:
            kind, length = "length", int(cl)
        else:
            kind, length = "eof", None
            upstream_close = True

        budget = None
        if d.matches and kind != "none" and length != 0:
            cut = self._take_truncate()
            if cut is not None:
                budget = [(length // 2) if (cut < 0 and length) else max(cut, 0)]
        bw = self._bandwidth() if d.matches else None
        out = _Out(self, cwriter, budget, bw)
        outcome = ("truncate:" if budget is not None else "forwarded:") + str(status)
        self._record(req.method, req.path, outcome)
        try:
            cwriter.write(rhead)
            await cwriter.drain()
            if budget is not None and budget[0] == 0:
                raise _Cut
            if kind == "length":
                await _pump(ureader, out, length)
            elif kind == "chunked":
                await _relay_chunked(ureader, out)
            elif kind == "eof":
                while True:
                    chunk = await ureader.read(_CHUNK)
                    if not chunk:
                        break
                    await out.write(chunk)
            await cwriter.drain()
        except _Cut:
            await _drain_quietly(cwriter)
            conn.drop()
            return False
        except asyncio.IncompleteReadError:
            # upstream died mid-body: the client sees a short body too
            conn.drop()
            return False
        if budget is not None or upstream_close or not body_sent:
            # budget larger than the body: cut right after it; or the upstream closes;
            # or it answered without reading the body, which the client may still send
            conn.drop()
            return False
        return not req.wants_close

    async def _send_fault_status(self, cwriter, req: _Request, d: Decision, close: bool) -> None:
        code = d.status
        try:
            reason = HTTPStatus(code).phrase
        except ValueError:
            reason = "Injected Fault"
        s3code = _S3_CODES.get(code, "InjectedFault")
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{s3code}</Code><Message>fault injected by daskcog FaultProxy "
            f"(HTTP {code})</Message><Resource>{req.path}</Resource>"
            "<RequestId>daskcog-fault</RequestId></Error>"
        ).encode()
        extra = {"Content-Type": "application/xml", "x-daskcog-fault": f"status-{code}"}
        if d.retry_after is not None:
            extra["Retry-After"] = str(d.retry_after)
        await self._send_simple(cwriter, code, body, close=close, extra=extra, reason=reason,
                                head_only=req.method == "HEAD")

    async def _send_simple(self, cwriter, code: int, body: bytes, *, close: bool,
                           extra: dict[str, str] | None = None, reason: str | None = None,
                           head_only: bool = False) -> None:
        if reason is None:
            try:
                reason = HTTPStatus(code).phrase
            except ValueError:
                reason = "Error"
        lines = [f"HTTP/1.1 {code} {reason}"]
        hdrs = {"Content-Type": "text/plain", **(extra or {})}
        hdrs["Content-Length"] = str(len(body))
        if close:
            hdrs["Connection"] = "close"
        lines += [f"{k}: {v}" for k, v in hdrs.items()]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not head_only:
            data += body
        with contextlib.suppress(ConnectionError, OSError):
            cwriter.write(data)
            await cwriter.drain()


class _Conn:
    """Per-client-connection state: the paired upstream keep-alive connection."""

    __slots__ = ("up",)

    def __init__(self) -> None:
        self.up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    def drop(self) -> None:
        if self.up is not None:
            _close(self.up[1])
            self.up = None


class _Out:
    """Writes response bytes to the client under a bandwidth cap and truncation budget."""

    def __init__(self, proxy: FaultProxy, writer: asyncio.StreamWriter,
                 budget: list[int] | None, bandwidth: float | None) -> None:
        self.proxy = proxy
        self.writer = writer
        self.budget = budget
        self.bandwidth = bandwidth

    async def write(self, data: bytes) -> None:
        cut = False
        if self.budget is not None:
            if len(data) >= self.budget[0]:
                data = data[: self.budget[0]]
                cut = True
            self.budget[0] -= len(data)
        if self.bandwidth:
            piece = max(1024, int(self.bandwidth / 20))
            for i in range(0, len(data), piece):
                part = data[i:i + piece]
                await self._throttle(len(part))
                self.writer.write(part)
                await self.writer.drain()
        elif data:
            self.writer.write(data)
            await self.writer.drain()
        if cut:
            raise _Cut

    async def _throttle(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        p = self.proxy
        start = max(now, p._bw_next)
        p._bw_next = start + n / self.bandwidth
        wait = start - now
        if wait > 0:
            await asyncio.sleep(wait)


async def _pump(src: asyncio.StreamReader, out: _Out, n: int) -> None:
    while n > 0:
        chunk = await src.read(min(n, _CHUNK))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", n)
        n -= len(chunk)
        await out.write(chunk)


async def _relay_chunked(src: asyncio.StreamReader, out) -> None:
    while True:
        line = await src.readuntil(b"\r\n")
        await out.write(line)
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers, then the final empty line
                t = await src.readuntil(b"\r\n")
                await out.write(t)
                if t == b"\r\n":
                    return
        await _pump(src, out, size + 2)


class _BufSink:
    def __init__(self, buf: bytearray) -> None:
        self.buf = buf

    async def write(self, data: bytes) -> None:
        self.buf += data


class _WriterSink:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


class _NullSink:
    async def write(self, data: bytes) -> None:
        pass


async def _read_body(reader: asyncio.StreamReader, req: _Request, sink) -> bytes | None:
    """Read the request body (framed as in ``req``) into ``sink``.

    ``sink`` is a bytearray (returned as bytes), a StreamWriter (streamed) or None (discarded).
    """
    if isinstance(sink, bytearray):
        target = _BufSink(sink)
    elif sink is None:
        target = _NullSink()
    else:
        target = _WriterSink(sink)
    te = (req.header("transfer-encoding") or "").lower()
    if "chunked" in te:
        await _relay_chunked(reader, target)
    else:
        n = int(req.header("content-length") or 0)
        while n > 0:
            chunk = await reader.read(min(n, _CHUNK))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", n)
            n -= len(chunk)
            await target.write(chunk)
    return bytes(sink) if isinstance(sink, bytearray) else None


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _rst(writer: asyncio.StreamWriter) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), without answering."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()


async def _drain_quietly(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        await writer.drain()
