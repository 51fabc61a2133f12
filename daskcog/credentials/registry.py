"""Credentials stay out of task graphs: graphs carry a credential *name*, workers resolve it.

How a worker gets credentials, in order of preference (README: "Credentials"):

1. Its own environment or config (AWS_ACCESS_KEY_ID, AWS_PROFILE, instance
   roles, GOOGLE_APPLICATION_CREDENTIALS, AZURE_*): obstore reads those itself,
   nothing is shipped.
2. A named set registered once per process: `register("prod", access_key_id=...,
   secret_access_key=...)` on a laptop, or `register_on_cluster(client, "prod",
   ...)` which installs a worker plugin (sent once through the scheduler, also
   run on workers that join later). Then `daskcog.open(url, credentials="prod")`.
3. Secrets passed straight to `daskcog.open(..., secret_access_key=...)` are
   split off the store options and registered under an anonymous name
   (`auto-<hash>`) in this process, and on the active distributed client's
   workers if there is one; the graph only holds the name.

Secret option names are recognised by pattern (`SECRET_PATTERN`). They never
appear in task keys, reprs, logs or error messages from daskcog.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
from typing import Any

from georeader.errors import GeoreaderError

SECRET_PATTERN = re.compile(
    r"secret|token|password|passwd|credential|account_key|access_key|key_id|sas|signature|"
    r"bearer|private|client_secret|session",
    re.I,
)


class CredentialsNotFoundError(GeoreaderError, LookupError):
    """A graph names credentials that this worker process does not have."""


_lock = threading.Lock()
_registry: dict[str, dict[str, Any]] = {}


def is_secret(option: str) -> bool:
    return bool(SECRET_PATTERN.search(option))


def split_secrets(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public options, secret options) by option name, looking inside nested dicts too
    (obstore's `config={...}`, `client_options={"default_headers": ...}`)."""
    public: dict[str, Any] = {}
    secret: dict[str, Any] = {}
    for key, value in options.items():
        if is_secret(key) or key == "default_headers":
            secret[key] = value
        elif isinstance(value, dict):
            inner_public, inner_secret = split_secrets(value)
            public[key] = inner_public
            if inner_secret:
                secret[key] = inner_secret
        else:
            public[key] = value
    return public, secret


def register(name: str, **secret_options: Any) -> None:
    """Make credentials available under `name` in this process."""
    with _lock:
        _registry[name] = dict(secret_options)


def unregister(name: str) -> None:
    with _lock:
        _registry.pop(name, None)


def resolve(name: str, url: str = "") -> dict[str, Any]:
    with _lock:
        found = _registry.get(name)
    if found is None:
        raise CredentialsNotFoundError(
            f"{url}: credentials {name!r} are not registered in this process; register them on "
            "every worker with daskcog.credentials.register_on_cluster(client, name, ...), or give "
            "the workers the credentials in their environment"
        )
    return dict(found)


def merge(public: dict[str, Any], secret: dict[str, Any]) -> dict[str, Any]:
    """Store options for obstore: public options plus secrets, nested dicts merged."""
    merged = dict(public)
    for key, value in secret.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_NAME_KEY = secrets.token_bytes(32)
"""Per-process key: anonymous names are stable within a client process but reveal
nothing about the secrets (an unkeyed hash of a weak password could be checked offline)."""


def anonymous_name(secret: dict[str, Any]) -> str:
    payload = json.dumps(secret, sort_keys=True, default=str).encode()
    return f"auto-{hmac.new(_NAME_KEY, payload, hashlib.sha256).hexdigest()[:16]}"


try:
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - distributed is a dependency
    _WorkerPlugin = object  # type: ignore[misc,assignment]


class CredentialsPlugin(_WorkerPlugin):  # type: ignore[misc,valid-type]
    """A distributed WorkerPlugin that registers a named credential set on each worker."""

    idempotent = True

    def __init__(self, name: str, secret_options: dict[str, Any]) -> None:
        self.name = name
        self._secret_options = secret_options

    def setup(self, worker: Any = None) -> None:
        register(self.name, **self._secret_options)

    def teardown(self, worker: Any = None) -> None:
        unregister(self.name)

    def __repr__(self) -> str:
        return f"CredentialsPlugin({self.name!r}, options={sorted(self._secret_options)} (redacted))"


def register_on_cluster(client: Any, name: str, **secret_options: Any) -> None:
    """Register credentials in this process and on every current and future worker."""
    register(name, **secret_options)
    client.register_plugin(CredentialsPlugin(name, secret_options), name=f"daskcog-credentials-{name}")


def _active_client() -> Any:
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def keep_out_of_graph(options: dict[str, Any], credentials: str | None) -> tuple[dict[str, Any], str | None]:
    """Split secrets off `options`; return (public options, credential name for the graph)."""
    public, secret = split_secrets(options)
    if not secret:
        return public, credentials
    if credentials is not None:
        raise ValueError("give either credentials=NAME or secret store options, not both")
    name = anonymous_name(secret)
    register(name, **secret)
    client = _active_client()
    if client is not None:
        client.register_plugin(CredentialsPlugin(name, secret), name=f"daskcog-credentials-{name}")
    return public, name
