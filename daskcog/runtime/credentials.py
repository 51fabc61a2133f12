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
4. A signed URL's query (`https://...?X-Amz-Signature=...`, `?sv=...&sig=...`)
   and a signer (`sign=planetary_computer.sign`) are secrets too (georeader's
   `SIGNING_OPTIONS`). Their anonymous name comes from the plain URL, not the
   token (`signed-<hash>`), so a re-signed URL keeps its graph name; a newer
   token or signer replaces the older one in every process.
5. Credential providers (`obstore.auth.*`): `register(name, provider=...)`, or
   `register_on_cluster(client, name, provider_factory=...)` where providers do
   not pickle (they hold HTTP sessions). Each process builds its provider once
   and keeps it (obstore refreshes its tokens); it reaches obstore as the
   `credential_provider` store option.

Secret option names are recognised by pattern (`SECRET_PATTERN`). They never
appear in task keys, reprs, logs or error messages from daskcog.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import re
import secrets
import threading
from collections.abc import Callable
from typing import Any

from daskcog.runtime import process_state
from georeader.errors import GeoreaderError
from georeader.io import SIGNING_OPTIONS

SECRET_PATTERN = re.compile(
    r"secret|token|password|passwd|credential|account_key|access_key|key_id|sas|signature|"
    r"bearer|private|client_secret|session",
    re.I,
)


class CredentialsNotFoundError(GeoreaderError, LookupError):
    """A graph names credentials that this worker process does not have."""


_lock = threading.Lock()
_registry: dict[str, dict[str, Any]] = {}
_providers: dict[str, tuple[int, Any]] = {}
"""name -> (pid, provider built from the name's `provider_factory`) in this process."""

PROVIDER_KEYS = frozenset({"provider", "provider_factory"})


def is_secret(option: str) -> bool:
    return (
        option in SIGNING_OPTIONS or option in PROVIDER_KEYS or bool(SECRET_PATTERN.search(option))
    )


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
    """Make credentials available under `name` in this process.

    Besides obstore's secret options (keys, tokens): `sign=` a signer
    (`sign(url) -> signed url`), `provider=` an obstore credential provider, or
    `provider_factory=` a zero-argument callable that builds one (once per process).
    """
    if "provider" in secret_options and "provider_factory" in secret_options:
        raise ValueError("give either provider= or provider_factory=, not both")
    with _lock:
        _registry[name] = dict(secret_options)
        _providers.pop(name, None)


def registered_names() -> list[str]:
    """Names of the credential sets registered in this process (never their secrets)."""
    with _lock:
        return sorted(_registry)


def unregister(name: str) -> None:
    with _lock:
        _registry.pop(name, None)
        _providers.pop(name, None)


def resolve(name: str, url: str = "") -> dict[str, Any]:
    """The store options of credentials `name` in this process (providers built once)."""
    with _lock:
        found = _registry.get(name)
    if found is None:
        raise CredentialsNotFoundError(
            f"{url}: credentials {name!r} are not registered in this process; register them on "
            "every worker with daskcog.credentials.register_on_cluster(client, name, ...), or give "
            "the workers the credentials in their environment"
        )
    options = {k: v for k, v in found.items() if k not in PROVIDER_KEYS}
    if "provider" in found:
        options["credential_provider"] = found["provider"]
    elif "provider_factory" in found:
        options["credential_provider"] = _built_provider(name, found["provider_factory"], url)
    return options


def built_providers() -> list[str]:
    """The names whose credential provider this process holds (built on first use), sorted."""
    with _lock:
        return sorted(_providers)


def _built_provider(name: str, factory: Callable[[], Any], url: str) -> Any:
    """The provider of `name` in this process, built by its factory on first use."""
    with _lock:
        built = _providers.get(name)
        if built is not None:  # a forked child starts without them (process_state below)
            return built[1]
    try:
        provider = factory()
    except Exception as exc:
        raise CredentialsNotFoundError(
            f"{url}: the provider factory of credentials {name!r} failed: {type(exc).__name__}"
        ) from exc
    with _lock:
        return _providers.setdefault(name, (os.getpid(), provider))[1]


def _forget_providers() -> None:
    """Drop the built providers (they rebuild on next use); registered names stay: they
    are the user's configuration, not a cache."""
    with _lock:
        _providers.clear()


def _info() -> dict[str, int]:
    with _lock:
        return {"registered": len(_registry), "providers": len(_providers)}


process_state.register("daskcog.credentials", info=_info, clear=_forget_providers)


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


def anonymous_name(secret: dict[str, Any], url: str = "") -> str:
    """`auto-<keyed hash of the secrets>`; with a signed URL's query,
    `signed-<keyed hash of the URL and the other secrets>`: not of the token. A signer
    alone names one set for all the URLs it signs (one registration for a mosaic)."""
    if "url_query" not in secret:
        payload = json.dumps(secret, sort_keys=True, default=str).encode()
        prefix = "auto"
    else:
        others = {k: v for k, v in secret.items() if k != "url_query"}
        payload = json.dumps([url, others], sort_keys=True, default=str).encode()
        prefix = "signed"
    return f"{prefix}-{hmac.new(_NAME_KEY, payload, hashlib.sha256).hexdigest()[:16]}"


try:
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - distributed is a dependency
    _WorkerPlugin = object  # type: ignore[misc,assignment]


class CredentialsPlugin(_WorkerPlugin):
    """A distributed WorkerPlugin that registers a named credential set on each worker."""

    idempotent = True

    def __init__(self, name: str, secret_options: dict[str, Any], *, replace: bool = False) -> None:
        self.name = name
        self._secret_options = secret_options
        if replace:
            self.idempotent = False  # a newer token or signer under the same name

    def setup(self, worker: Any = None) -> None:
        register(self.name, **self._secret_options)

    def teardown(self, worker: Any = None) -> None:
        unregister(self.name)

    def __repr__(self) -> str:
        return (
            f"CredentialsPlugin({self.name!r}, options={sorted(self._secret_options)} (redacted))"
        )


def register_on_cluster(client: Any, name: str, **secret_options: Any) -> None:
    """Register credentials in this process and on every current and future worker.

    Providers travel pickled: give `provider_factory=` (e.g.
    `functools.partial(PlanetaryComputerCredentialProvider, url)`) when the
    provider itself does not pickle; each worker then builds its own.
    """
    if "provider" in secret_options:
        try:
            pickle.dumps(secret_options["provider"])
        except Exception as exc:  # noqa: BLE001 - any pickling failure
            raise TypeError(
                f"credentials {name!r}: the provider does not pickle ({type(exc).__name__}), so it "
                "cannot be sent to the workers; give provider_factory= (a function or class that "
                "builds it) instead"
            ) from None
    register(name, **secret_options)
    client.register_plugin(
        CredentialsPlugin(name, secret_options, replace=True), name=f"daskcog-credentials-{name}"
    )


def active_client() -> Any:
    """The current distributed Client, or None (no distributed, or no client in this process)."""
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def with_secrets(public: Any, name: str | None, url: str = "") -> dict[str, Any]:
    """Public store options (a dict or pairs) with the named credential set merged in, in this
    process."""
    options = dict(public)
    return options if name is None else merge(options, resolve(name, url))


def keep_out_of_graph(
    options: dict[str, Any], credentials: str | None, url: str = ""
) -> tuple[dict[str, Any], str | None]:
    """Split secrets off `options`; return (public options, credential name for the graph)."""
    public, secret = split_secrets(options)
    if not secret:
        return public, credentials
    if credentials is not None:
        raise ValueError(
            "give either credentials=NAME or secret store options (a signed URL's query and "
            "sign= count as secrets), not both"
        )
    name = anonymous_name(secret, url)
    with _lock:
        previous = _registry.get(name)
    changed = previous is not None and previous != secret
    if previous is None or changed:
        register(name, **secret)
    client = active_client()
    if client is not None:
        client.register_plugin(
            CredentialsPlugin(name, secret, replace=changed), name=f"daskcog-credentials-{name}"
        )
    return public, name
