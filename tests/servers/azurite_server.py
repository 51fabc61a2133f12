"""Azurite, the Azure Storage emulator (npm package ``azurite``), on 127.0.0.1 for tests.

On first use it is installed into the project's ``.cache/azurite`` (ignored by
git) with ``npm install --prefix``, so a fresh clone needs only node and npm;
later runs reuse it. Each server gets a free port and a throw-away data
folder; a watchdog (the one the S3 server uses) kills it when the test process
dies. Azurite checks Shared Key and SAS signatures, SAS expiry included.

Also here:

* ``create_container``: the one request the tests sign by hand (Shared Key):
  obstore has no container API.
* ``container_sas``: a service SAS for a whole container (obstore's ``sign``
  makes one per blob), what Planetary Computer's token API hands out.
* ``TokenEndpoint``: a small HTTP server in Planetary Computer's SAS API shape
  (``GET /<account>/<container>`` -> ``{"token": ..., "msft:expiry": ...}``)
  issuing container tokens that expire in seconds, for
  ``obstore.auth.planetary_computer``'s ``sas_url``.

The emulator's account and key are Azurite's published defaults (not secrets).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .s3_server import HOST, WATCHDOG, free_ports, port_open

__all__ = ["ACCOUNT", "AzuriteServer", "AzuriteError", "TokenEndpoint", "AZURITE_VERSION"]

AZURITE_VERSION = "3.37.0"
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
SAS_VERSION = "2021-08-06"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
INSTALL_DIR = PROJECT_ROOT / ".cache" / "azurite"


class AzuriteError(RuntimeError):
    """Azurite could not be installed or started."""


def azurite_binary(install_dir: Path = INSTALL_DIR, timeout: float = 270) -> Path:
    """The azurite-blob entry point, installed from npm on first use."""
    entry = install_dir / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
    if entry.is_file():
        return entry
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise AzuriteError(
                f"{tool!r} not found: the Azure tests run Azurite, which needs node and npm "
                "(e.g. apt-get install nodejs npm)"
            )
    install_dir.mkdir(parents=True, exist_ok=True)
    lock = install_dir / ".install.lock"
    with open(lock, "w") as handle:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_EX)  # parallel test processes install once
        if not entry.is_file():
            done = subprocess.run(
                ["npm", "install", "--prefix", str(install_dir), "--no-audit", "--no-fund",
                 "--loglevel=error", f"azurite@{AZURITE_VERSION}"],
                capture_output=True, text=True, timeout=timeout, check=False,
            )
            if done.returncode != 0 or not entry.is_file():
                raise AzuriteError(
                    f"npm install azurite@{AZURITE_VERSION} failed ({done.returncode}): "
                    f"{(done.stderr or done.stdout)[-2000:]}"
                )
    return entry


class AzuriteServer:
    """The Azurite blob service on ``127.0.0.1:<free port>``; ``stop()`` (idempotent) ends it."""

    def __init__(self, startup_timeout: float = 60.0) -> None:
        entry = azurite_binary()
        self._tmp = tempfile.mkdtemp(prefix="daskcog-azurite-")
        (self.port,) = free_ports(1)
        self._log_path = os.path.join(self._tmp, "azurite.log")
        self._log = open(self._log_path, "wb")  # noqa: SIM115 - closed in stop()
        started = time.monotonic()
        command = [
            "node", str(entry), "--blobHost", HOST, "--blobPort", str(self.port),
            "--location", os.path.join(self._tmp, "data"), "--silent", "--skipApiVersionCheck",
            "--disableProductStyleUrl",
        ]
        self._proc = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, *command], stdin=subprocess.PIPE,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "DASKCOG_S3_CLEANUP": self._tmp},
        )
        while not port_open(self.port):
            if self._proc.poll() is not None:
                self.stop()
                raise AzuriteError(
                    f"azurite exited with code {self._proc.returncode}: {self.log_tail()}"
                )
            if time.monotonic() - started > startup_timeout:
                tail = self.log_tail()
                self.stop()
                raise AzuriteError(f"azurite did not listen within {startup_timeout:.0f} s: {tail}")
            time.sleep(0.05)
        self.startup_seconds = time.monotonic() - started

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}/{ACCOUNT}"

    def options(self, **extra: Any) -> dict[str, Any]:
        """obstore Azure options for this emulator (account key included: a test default)."""
        return {"account_name": ACCOUNT, "account_key": ACCOUNT_KEY, "endpoint": self.endpoint,
                "client_options": {"allow_http": True}, **extra}

    def store(self, container: str, **extra: Any) -> Any:
        from obstore.store import AzureStore

        return AzureStore(container, **self.options(**extra))

    def log_tail(self, n: int = 3000) -> str:
        with contextlib.suppress(OSError), open(self._log_path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")
        return "<no log>"

    def stop(self) -> None:
        proc, self._proc = getattr(self, "_proc", None), None
        if proc is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self._log.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> AzuriteServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- requests obstore does not make --------------------------------------------
    def create_container(self, name: str) -> None:
        """Create a container (Shared Key signed); no error when it exists."""
        date = dt.datetime.now(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
        headers = {"x-ms-date": date, "x-ms-version": SAS_VERSION}
        canonical = "".join(f"{k}:{headers[k]}\n" for k in sorted(headers))
        resource = f"/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
        to_sign = "PUT\n" + "\n" * 11 + canonical + resource
        headers["Authorization"] = f"SharedKey {ACCOUNT}:{_sign(to_sign)}"
        headers["Content-Length"] = "0"
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            conn.request("PUT", f"/{ACCOUNT}/{name}?restype=container", headers=headers)
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status not in (201, 409):
            raise AzuriteError(f"create container {name!r}: HTTP {response.status}: {body[:300]!r}")

    def container_sas(
        self, container: str, seconds: float, permissions: str = "rl"
    ) -> tuple[str, dt.datetime]:
        """(SAS token for the whole container, its expiry): a service SAS signed with the key."""
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        start = now - dt.timedelta(seconds=60)
        expiry = now + dt.timedelta(seconds=seconds)
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        fields = [
            permissions, start.strftime(fmt), expiry.strftime(fmt), f"/blob/{ACCOUNT}/{container}",
            "", "", "", SAS_VERSION, "c", "", "", "", "", "", "", "",
        ]
        signature = _sign("\n".join(fields))
        token = "&".join(
            f"{k}={quote(v, safe='')}"
            for k, v in (
                ("sv", SAS_VERSION),
                ("sr", "c"),
                ("sp", permissions),
                ("st", start.strftime(fmt)),
                ("se", expiry.strftime(fmt)),
                ("sig", signature),
            )
        )
        return token, expiry


def _sign(text: str) -> str:
    key = base64.b64decode(ACCOUNT_KEY)
    return base64.b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest()).decode()


class TokenEndpoint:
    """Planetary Computer's SAS token API in miniature, for one Azurite server.

    ``GET /<account>/<container>`` answers ``{"token": <container SAS>, "msft:expiry":
    <ISO time>}`` with tokens that live ``life`` seconds; ``issued`` counts them.
    """

    def __init__(self, azurite: AzuriteServer, life: float = 3.0) -> None:
        self.azurite = azurite
        self.life = life
        self.issued = 0
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                parts = self.path.strip("/").split("/")
                if len(parts) != 2 or parts[0] != ACCOUNT:
                    self.send_error(404, "expected /<account>/<container>")
                    return
                token, expiry = endpoint.azurite.container_sas(parts[1], endpoint.life)
                with endpoint._lock:
                    endpoint.issued += 1
                body = json.dumps({"msft:expiry": expiry.isoformat(), "token": token}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
