"""Which keyword arguments a path or URL's store accepts, checked before anything is built.

Every entry point (`daskcog.open`, `mosaic`, `stack`, `load`, the xarray backend,
the CLI) passes the keywords it does not know itself on as store options. A
misspelt keyword (`regoin=`, `chunck=`) must be a `TypeError` at call time, not
obstore's `UnknownConfigurationKeyError` (or a misleading message) from a worker
at compute time, so `check_store_options` checks them here, once for all.

The names come from obstore itself, never from a hand-written list:

* obstore publishes each store's configuration as typed dicts in its stubs
  (`S3Config`, `GCSConfig`, `AzureConfig`, `ClientConfig`, `RetryConfig`,
  `BackoffConfig`; not importable at run time), read here with `ast`; they give
  the names to suggest for a misspelling;
* obstore also accepts aliases those stubs do not list (upper case,
  `aws_` / `google_` / `azure_` prefixes, `endpoint_url`, `token`, ...): a name
  the stubs do not hold is put to obstore's own store class, which raises
  `UnknownConfigurationKeyError` for a name it does not know (no I/O).

Local files and memory:// take no store options, only georeader's and daskcog's
own (`STORE_LEVEL_OPTIONS`).
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.util
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from georeader.errors import UnknownOptionError
from georeader.process_state import register_function_cache

SIGNING_OPTIONS = frozenset({"sign", "url_query"})
"""Store options that carry a signed URL's query or its signer: secrets, and not
part of the object's identity (a re-signed URL is the same object)."""
READER_OPTIONS = frozenset({"max_concurrency"})
"""Options for georeader's reads, not for obstore (taken out before a store is built)."""
STORE_LEVEL_OPTIONS = READER_OPTIONS | SIGNING_OPTIONS | {"credentials", "requester_pays"}
"""Options that georeader / daskcog take themselves whatever the store: a named credential
set (`credentials`), a signer or signed query, S3's requester-pays switch (refused below on
other stores) and the reads' concurrency."""
OBSTORE_COMMON = frozenset({"client_options", "retry_config"})
"""Keyword arguments of every obstore store's constructor (HTTP included)."""
CLOUD_COMMON = OBSTORE_COMMON | frozenset({"config", "credential_provider"})
"""Keyword arguments of obstore's cloud stores (S3, GCS, Azure) besides their typed config."""

URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
"""A URL starts with a scheme and '//'; anything else (even with ':', '#', '?', '%') is a path."""

_STUBS = {
    "s3": ("_aws.pyi", "S3Config"),
    "gcs": ("_gcs.pyi", "GCSConfig"),
    "azure": ("_azure.pyi", "AzureConfig"),
    "client_options": ("_client.pyi", "ClientConfig"),
    "retry_config": ("_retry.pyi", "RetryConfig"),
    "backoff": ("_retry.pyi", "BackoffConfig"),
}
_PREFIXES = {"s3": "aws_", "gcs": "google_", "azure": "azure_"}
"""The prefix obstore accepts in front of each cloud store's names (its environment variables')."""


@functools.cache
def stub_names(kind: str) -> frozenset[str]:
    """The keys of obstore's typed config dict for `kind` ("s3", "gcs", "azure",
    "client_options", "retry_config", "backoff"), read from obstore's stubs; empty when
    the stubs are not there (then only obstore's own check below applies)."""
    spec = importlib.util.find_spec("obstore")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    file_name, class_name = _STUBS[kind]
    path = Path(next(iter(spec.submodule_search_locations))) / "_store" / file_name
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return frozenset()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return frozenset(
                item.target.id
                for item in node.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
            )
    return frozenset()


def store_kind(url: str) -> str:
    """"local", "memory", "http", "s3", "gcs" or "azure": the store obstore picks for the
    URL (its own `parse_scheme`), "local" for a plain path."""
    if not URL.match(url):
        return "local"
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("file", "memory"):
        return "local" if scheme == "file" else "memory"
    from obstore._obstore import parse_scheme

    try:
        return str(parse_scheme(url))
    except Exception:  # obstore does not know the scheme: parse_location refuses it later
        return "unknown"


@functools.lru_cache(maxsize=1024)
def _obstore_knows(kind: str, name: str) -> bool:
    """Whether obstore's store class for `kind` accepts the config key `name` (aliases
    included): building a store does no I/O and raises `UnknownConfigurationKeyError` for
    a name it does not know; any other complaint (the probe's value) means the name is
    known. Cached: a name is known or not whatever its value."""
    from obstore.exceptions import UnknownConfigurationKeyError
    from obstore.store import AzureStore, GCSStore, S3Store

    store_class = {"s3": S3Store, "gcs": GCSStore, "azure": AzureStore}[kind]
    try:
        store_class("probe", **{name: "probe"})
    except UnknownConfigurationKeyError:
        return False
    except Exception:
        return True
    return True


register_function_cache("georeader.obstore_option_names", _obstore_knows)


def _is_store_key(kind: str, name: str) -> bool:
    lower = name.lower()
    names = stub_names(kind)
    prefix = _PREFIXES[kind]
    if lower in names or (lower.startswith(prefix) and lower[len(prefix) :] in names):
        return True
    return _obstore_knows(kind, name)


def _suggest(name: str, candidates: Collection[str]) -> str:
    close = difflib.get_close_matches(name.lower(), sorted(candidates), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _plain(url: str) -> str:
    """The URL as an error may show it: never a signed query (a credential)."""
    return url.partition("?")[0].partition("#")[0] if "://" in url else url


def _unknown_nested(option: str, value: Any, kinds: tuple[str, ...]) -> list[str]:
    """Unknown keys inside `client_options` / `retry_config` (obstore ignores some silently:
    a misspelt retry key would be dropped without a word)."""
    if not isinstance(value, Mapping):
        return []
    names = frozenset().union(*(stub_names(k) for k in kinds))
    if not names:
        return []
    found = []
    for key, inner in value.items():
        if str(key).lower() not in names:
            found.append(f"{option}[{key!r}]{_suggest(str(key), names)}")
        elif option == "retry_config" and key == "backoff":
            found += _unknown_nested("retry_config['backoff']", inner, ("backoff",))
    return found


def check_store_options(
    url: str, options: Mapping[str, Any], *, entry_keywords: Collection[str] = ()
) -> None:
    """Raise `UnknownOptionError` (a TypeError) naming every option the URL's store does
    not take, with the likely intended name when one is close.

    `url`: the path or URL the options are for (a signed query is never shown).
    `options`: the keywords an entry point passes on as store options.
    `entry_keywords`: the entry point's own parameter names, only to suggest (`chunck`
    -> `chunks`).

    Checked against the names obstore's store for the URL takes (see module docstring),
    `client_options` / `retry_config` keys against obstore's `ClientConfig` /
    `RetryConfig`, and `STORE_LEVEL_OPTIONS`. With a signer or a signed query, the store
    is georeader's `SignedStore`, which takes `client_options` and `retry_config` only.
    """
    url = str(url)
    kind = store_kind(url)
    signed = not SIGNING_OPTIONS.isdisjoint(options)
    if kind in ("local", "memory", "unknown"):
        store_names: frozenset[str] = frozenset()
    elif kind == "http" or signed:
        store_names = OBSTORE_COMMON
    else:
        store_names = CLOUD_COMMON | stub_names(kind)
    candidates = set(store_names) | STORE_LEVEL_OPTIONS | set(entry_keywords)
    problems: list[str] = []
    for name, value in options.items():
        if name == "requester_pays":
            if value and kind != "s3":
                problems.append("'requester_pays' (an S3 option; this is not an S3 URL)")
        elif name in STORE_LEVEL_OPTIONS:
            pass
        elif name in CLOUD_COMMON:
            if name not in store_names:
                problems.append(repr(name))
            elif name in ("client_options", "retry_config"):
                problems += _unknown_nested(name, value, (name,))
        elif kind in ("s3", "gcs", "azure") and not signed and _is_store_key(kind, name):
            pass
        else:
            problems.append(f"{name!r}{_suggest(name, candidates)}")
    if not problems:
        return
    store = {"s3": "S3", "gcs": "GCS", "azure": "Azure"}.get(kind)
    what = {
        "local": "a local file takes no store options",
        "memory": "a memory:// object takes no store options",
        "http": "an HTTP(S) URL's store takes only client_options and retry_config",
        "unknown": "this URL's scheme takes no store options",
    }.get(kind, f"obstore's {store} store does not take it")
    if signed and store:
        what = "a signed URL (sign= / url_query=) takes only client_options and retry_config"
    raise UnknownOptionError(
        f"unknown keyword argument{'s' if len(problems) > 1 else ''} "
        f"{', '.join(problems)} for {_plain(url)}: not a keyword of this function, and {what}"
    )


def check_sources_options(
    sources: Any, options: Mapping[str, Any], *, entry_keywords: Collection[str] = ()
) -> None:
    """`check_store_options` for every kind of store among `sources` (paths, URLs, or
    values with a `.url` such as readers and scenes), once per kind: thousands of URLs of
    one bucket cost one check."""
    seen: set[str] = set()
    for source in sources:
        url = os.fspath(source) if isinstance(source, str | os.PathLike) else getattr(
            source, "url", None
        )
        if not isinstance(url, str):
            continue
        kind = store_kind(url)
        if kind not in seen:
            seen.add(kind)
            check_store_options(url, options, entry_keywords=entry_keywords)
