"""A threaded static HTTP/1.1 server with byte-range support, for tests.

Serves the files below ``root_dir`` on 127.0.0.1 (random free port):

* ``GET`` of a whole file -> ``200`` with ``Content-Length``, ``ETag``,
  ``Last-Modified`` and ``Accept-Ranges: bytes``;
* ``GET`` with ``Range: bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` -> ``206`` with
  ``Content-Range: bytes a-b/size`` (an end past the file is clamped, RFC 9110);
* an unsatisfiable (start >= size), malformed or multi-range ``Range`` -> ``416``
  with ``Content-Range: bytes */size`` (strict on purpose: a client that sends
  such a range has a bug the tests should see);
* ``HEAD`` -> the headers ``GET`` would send, no body;
* ``If-Match`` / ``If-None-Match`` / ``If-Modified-Since`` / ``If-Unmodified-Since``
  -> ``412`` / ``304`` as usual;
* missing file or a directory -> ``404``; a path in ``forbidden`` -> ``403``;
  other methods -> ``405``.

HTTP/1.1 keep-alive is supported (obstore/reqwest keeps connections open).

Works with ``obstore.store.HTTPStore.from_url(server.url + "/dir",
client_options={"allow_http": True})`` for ``get``, ``get_range(s)`` and ``head``.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http.server
import os
import re
import shutil
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

__all__ = ["RangeHTTPServer"]

HOST = "127.0.0.1"
_CHUNK = 256 * 1024
_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class _ByteRangeError(Exception):
    pass


def _parse_range(header: str, size: int) -> tuple[int, int]:
    """Parse one ``bytes=`` range; return inclusive ``(start, end)`` or raise _ByteRangeError."""
    if "," in header:
        raise _ByteRangeError("multiple ranges are not supported")
    m = _RANGE_RE.match(header)
    if not m:
        raise _ByteRangeError(f"malformed range {header!r}")
    a, b = m.groups()
    if a == "" and b == "":
        raise _ByteRangeError(f"malformed range {header!r}")
    if a == "":  # suffix: last n bytes
        n = int(b)
        if n == 0 or size == 0:
            raise _ByteRangeError("unsatisfiable suffix range")
        return max(0, size - n), size - 1
    start = int(a)
    end = size - 1 if b == "" else int(b)
    if end < start:
        raise _ByteRangeError(f"malformed range {header!r}")
    if start >= size:
        raise _ByteRangeError("range starts past the end of the file")
    return start, min(end, size - 1)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "daskcog-test-http/1.0"
    sys_version = ""
    server: _Server

    # quiet: the request log is kept by the owner
    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle's
        # algorithm + delayed ACKs add ~40 ms to every small response
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.owner._track(self.connection, add=False)

    # ------------------------------------------------------------------ dispatch
    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _not_allowed(self) -> None:
        self.server.owner._log(self.command, self._url_path(), self.headers.get("Range"))
        self._drain_body()
        self._simple(405, b"method not allowed\n", extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_PROPFIND = _not_allowed

    # ------------------------------------------------------------------ helpers
    def _url_path(self) -> str:
        return urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)

    def _drain_body(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        while n > 0:
            chunk = self.rfile.read(min(n, _CHUNK))
            if not chunk:
                break
            n -= len(chunk)

    def _simple(self, status: int, body: bytes = b"", *, head: bool = False,
                extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def _serve(self, head: bool) -> None:
        owner = self.server.owner
        url_path = self._url_path()
        range_header = self.headers.get("Range")
        owner._log(self.command, url_path, range_header)
        delay = owner.delay_seconds
        if delay:
            time.sleep(delay)
        rel = url_path.lstrip("/")
        if owner.is_forbidden(rel):
            self._simple(403, b"forbidden\n", head=head)
            return
        fs_path = owner._resolve(rel)
        if fs_path is None or not fs_path.is_file():
            self._simple(404, b"not found\n", head=head)
            return
        try:
            f = open(fs_path, "rb")  # noqa: SIM115 - closed by the `with f:` below
        except OSError:
            self._simple(404, b"not found\n", head=head)
            return
        with f:
            st = os.fstat(f.fileno())
            size = st.st_size
            etag = owner.etag_for(fs_path, st)
            last_modified = email.utils.formatdate(st.st_mtime, usegmt=True)
            common = {
                "ETag": etag,
                "Last-Modified": last_modified,
                "Accept-Ranges": "bytes",
                "Content-Type": "application/octet-stream",
            }
            status = self._preconditions(etag, st.st_mtime)
            if status == 412:
                self._simple(412, b"precondition failed\n", head=head)
                return
            if status == 304:
                self.send_response(304)
                for k in ("ETag", "Last-Modified"):
                    self.send_header(k, common[k])
                self.end_headers()
                return

            if range_header is not None and self._if_range_ok(etag, last_modified):
                try:
                    start, end = _parse_range(range_header, size)
                except _ByteRangeError as exc:
                    self._simple(
                        416, f"{exc}\n".encode(), head=head,
                        extra={"Content-Range": f"bytes */{size}"},
                    )
                    return
                length = end - start + 1
                self.send_response(206)
                for k, v in common.items():
                    self.send_header(k, v)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.send_header("Content-Length", str(length))
                self.end_headers()
            else:
                start, length = 0, size
                self.send_response(200)
                for k, v in common.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(size))
                self.end_headers()
            if head or length == 0:
                return
            try:
                f.seek(start)
                remaining = length
                while remaining > 0:
                    chunk = f.read(min(_CHUNK, remaining))
                    if not chunk:  # file shrank under us: cut the connection
                        self.close_connection = True
                        return
                    self.wfile.write(chunk)
                    remaining -= len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    def _if_range_ok(self, etag: str, last_modified: str) -> bool:
        if_range = self.headers.get("If-Range")
        if if_range is None:
            return True
        return if_range.strip() in (etag, last_modified)

    def _preconditions(self, etag: str, mtime: float) -> int | None:
        def tags(value: str) -> list[str]:
            return [t.strip().removeprefix("W/") for t in value.split(",")]

        if_match = self.headers.get("If-Match")
        if if_match is not None and if_match.strip() != "*" and etag not in tags(if_match):
            return 412
        ius = self.headers.get("If-Unmodified-Since")
        if if_match is None and ius is not None:
            with contextlib.suppress(TypeError, ValueError):
                if int(mtime) > email.utils.parsedate_to_datetime(ius).timestamp():
                    return 412
        inm = self.headers.get("If-None-Match")
        if inm is not None:
            if inm.strip() == "*" or etag in tags(inm):
                return 304
        else:
            ims = self.headers.get("If-Modified-Since")
            if ims is not None:
                with contextlib.suppress(TypeError, ValueError):
                    if int(mtime) <= email.utils.parsedate_to_datetime(ims).timestamp():
                        return 304
        return None


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # bursts of parallel range requests overflow the default 5
    owner: RangeHTTPServer

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        # Clients that hang up mid-response (fault tests do) are not errors here.
        pass


class RangeHTTPServer:
    """Static file server with Range support on ``127.0.0.1:<free port>``.

    Public API:

    * ``url`` - ``"http://127.0.0.1:PORT"`` (no trailing slash); ``port``, ``host``
    * ``root_dir`` - the directory served (a :class:`pathlib.Path`)
    * ``request_log`` - list of ``(method, path, range_header_or_None)``, appended
      as requests arrive (``path`` is the URL-decoded path without query)
    * ``forbidden`` - set of paths relative to the root (``"dir/file.tif"``)
      answered ``403``; see :meth:`forbid` / :meth:`allow`
    * ``delay_seconds`` - sleep this long before answering each GET/HEAD
    * ``backlog=`` - the listen backlog (default 128; Python's own default is 5)
    * :meth:`put_file`, :meth:`put_bytes` - add files, returning their URLs
    * :meth:`url_for` - URL of a path below the root
    * :meth:`reset` - clear the request log, forbidden set and delay
    * :meth:`stop` - shut down (idempotent); also a context manager
    """

    def __init__(
        self,
        root_dir: str | os.PathLike,
        *,
        forbidden: Iterable[str] = (),
        backlog: int | None = None,
    ) -> None:
        self.root_dir = Path(root_dir).resolve()
        if not self.root_dir.is_dir():
            raise NotADirectoryError(str(self.root_dir))
        self.request_log: list[tuple[str, str, str | None]] = []
        self.forbidden: set[str] = {self._norm(p) for p in forbidden}
        self.delay_seconds: float = 0.0
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._etags: dict[tuple, str] = {}
        t0 = time.monotonic()
        server_class = _Server
        if (
            backlog is not None
        ):  # a fragile origin: connections past the backlog are refused/dropped
            server_class = type("_SmallBacklogServer", (_Server,), {"request_queue_size": backlog})
        self._httpd = server_class((HOST, 0), _Handler)
        self._httpd.owner = self
        self.host = HOST
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"RangeHTTPServer:{self.port}", daemon=True,
        )
        self._thread.start()
        self.startup_seconds = time.monotonic() - t0
        self._stopped = False

    # ------------------------------------------------------------------ public
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url_for(self, relpath: str) -> str:
        return f"{self.url}/{urllib.parse.quote(self._norm(relpath))}"

    def put_file(self, local_path: str | os.PathLike, relpath: str | None = None) -> str:
        """Copy ``local_path`` to ``root_dir/relpath`` (default: its file name); return its URL."""
        src = Path(local_path)
        rel = self._norm(relpath or src.name)
        dst = self.root_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return self.url_for(rel)

    def put_bytes(self, relpath: str, data: bytes) -> str:
        """Write ``data`` to ``root_dir/relpath``; return its URL."""
        rel = self._norm(relpath)
        dst = self.root_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
        return self.url_for(rel)

    def forbid(self, *relpaths: str) -> None:
        with self._lock:
            self.forbidden.update(self._norm(p) for p in relpaths)

    def allow(self, *relpaths: str) -> None:
        with self._lock:
            self.forbidden.difference_update(self._norm(p) for p in relpaths)

    def is_forbidden(self, relpath: str) -> bool:
        with self._lock:
            return self._norm(relpath) in self.forbidden

    def requests(self, method: str | None = None, path: str | None = None) -> list:
        """Snapshot of ``request_log``, optionally filtered by method and/or exact path."""
        with self._lock:
            log = list(self.request_log)
        return [
            r for r in log
            if (method is None or r[0] == method)
            and (path is None or r[1] == "/" + self._norm(path))
        ]

    def reset(self) -> None:
        with self._lock:
            self.request_log.clear()
            self.forbidden.clear()
        self.delay_seconds = 0.0

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
        for c in conns:  # idle keep-alive connections would otherwise linger
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def __enter__(self) -> RangeHTTPServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RangeHTTPServer {self.url} root={self.root_dir}>"

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _norm(relpath: str) -> str:
        return str(relpath).replace(os.sep, "/").lstrip("/")

    def _resolve(self, rel: str) -> Path | None:
        try:
            p = (self.root_dir / rel).resolve()
        except (OSError, ValueError):
            return None
        if p != self.root_dir and self.root_dir not in p.parents:
            return None  # path traversal
        return p

    def etag_for(self, path: Path, st: os.stat_result) -> str:
        key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
        with self._lock:
            tag = self._etags.get(key)
            if tag is None:
                tag = '"' + hashlib.md5(repr(key).encode()).hexdigest() + '"'
                self._etags[key] = tag
        return tag

    def _log(self, method: str, path: str, range_header: str | None) -> None:
        with self._lock:
            self.request_log.append((method, path, range_header))

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)
