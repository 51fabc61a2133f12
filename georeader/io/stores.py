"""Turn a path or URL into (store, key): the one place that knows URL schemes.

Stores are built from the URL's *directory*, and the file name is the key, so
files in the same folder or bucket prefix share one store (one connection
pool). Stores are cached per process by (directory URL, options) because
building one costs milliseconds (obstore's LocalStore: ~20 ms); options become a
key through `canonical_json`, the one spelling daskcog's caches use too.

Local files use `async_tiff.store.LocalStore`, which async-tiff drives natively
from Rust: measured ~1 ms to open against ~22 ms for obstore's LocalStore, and
5-25 % faster reads (see ../shared/notes/dependencies.md). Remote URLs use
obstore's stores: their errors keep their types (NotFound, PermissionDenied) and
their retry and client options are documented.

A URL is read as what it names: http:// is allowed without options (the user named
the scheme, `allow_http_when_named`); an https URL of a bucket
(`https://bucket.s3.region.amazonaws.com/key`, path style, Azure blob) with no
store options is an anonymous HTTPS read, as GDAL's /vsicurl/ reads it, and with
the bucket store's options (region, keys, skip_signature, requester_pays) it is
that store (`s3_https_url`). Unknown options are refused before any of this
(`check_store_options`).
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from georeader.errors import GeoreaderError, InvalidURLError, StoreConfigError
from georeader.io.local_store import PathStore
from georeader.io.store_options import OBSTORE_COMMON, store_kind
from georeader.io.store_options import READER_OPTIONS as READER_OPTIONS
from georeader.io.store_options import URL as _URL
from georeader.io.store_options import check_store_options as check_store_options
from georeader.process_state import Table, settings

REMOTE_SCHEMES = frozenset(
    {"s3", "s3a", "gs", "gcs", "az", "azure", "abfs", "abfss", "http", "https"}
)


_NATIVE_SAFE_NAME = re.compile(r"^[A-Za-z0-9 ._+=,;@()-]+$")
"""File names async-tiff's LocalStore maps to the file unchanged (object_store percent-encodes
'%', '#', '?', '*', '\\', non-ASCII and control characters in keys; measured)."""


@dataclass(frozen=True)
class Location:
    """Where an object lives: the store's base URL and the key inside it.

    The one value a path or URL becomes at the boundary (`parse_location`), worked out
    once: a signed URL's query is never part of it (it is a credential and travels with
    the store options, `split_signed_url`), and its scheme is parsed once here, not at
    every read that asks.
    """

    url: str
    """Normalised URL of the object (a percent-encoded `Path.as_uri()` for local files)."""
    base_url: str
    """The directory URL the store is built on."""
    key: str
    """The object's path relative to `base_url` (decoded: the real name)."""
    scheme: str = field(init=False, compare=False)
    """The URL's scheme, lower case ("file" for local files)."""
    is_local: bool = field(init=False, compare=False)
    """A local file (read with `pread`, no event loop needed)."""

    def __post_init__(self) -> None:
        scheme = urlsplit(self.url).scheme.lower()
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "is_local", scheme == "file")

    @property
    def local_path(self) -> str:
        """Absolute filesystem path (local files only)."""
        return os.path.join(unquote(urlsplit(self.base_url).path), self.key)


def _local(path: str) -> Location:
    if not path.strip():
        # Path("") is the current folder: never read that for an empty argument
        raise InvalidURLError(f"the path {path!r} is empty; give a file's path or URL")
    path = str(Path(path).expanduser().absolute())
    directory, name = os.path.split(path)
    if not name:
        raise InvalidURLError(f"{path!r} names a folder, not a file")
    # no file-system access here (readers parse in `__init__`, which does no I/O): a path
    # that is a folder is refused where the file is opened (`check_not_folder`)
    return Location(url=Path(path).as_uri(), base_url=Path(directory).as_uri(), key=name)


def check_not_folder(location: Location) -> None:
    """InvalidURLError when a local location is a folder (opening it would fail less clearly)."""
    if location.is_local and os.path.isdir(location.local_path):
        raise InvalidURLError(f"{location.local_path!r} names a folder, not a file")


def parse_location(path_or_url: str | os.PathLike[str]) -> Location:
    """Normalise a local path, file:// URL or remote URL into a Location.

    A local path is taken literally, whatever characters it holds ('#', '?',
    '%', non-ASCII); only text that starts like a URL (`scheme://`) is parsed as
    one, and a file:// URL is percent-decoded (what `Path.as_uri()` makes).
    """
    text = os.fspath(path_or_url)
    if not _URL.match(text):
        return _local(text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.query or parts.fragment:
            raise InvalidURLError(
                f"file URL {text!r} has a query or fragment; percent-encode '?' and '#' in "
                "file names (Path.as_uri() does) or pass the plain path"
            )
        if parts.netloc not in ("", "localhost"):
            raise InvalidURLError(f"file URL {text!r} names a host; only local files are supported")
        return _local(unquote(parts.path))
    if scheme == "memory":
        key = (parts.netloc + parts.path).lstrip("/")
        return Location(url=f"memory:///{key}", base_url="memory:///", key=key)
    if scheme not in REMOTE_SCHEMES:
        raise InvalidURLError(f"unsupported URL scheme {scheme!r} in {text!r}")
    if parts.query or parts.fragment:
        # a query reaching here was not split off by `split_signed_url` (only http(s) URLs
        # are signed URLs): the store would fetch another object, or unsigned; and a query
        # may be a credential: refuse, and do not echo it
        raise InvalidURLError(
            f"{text.partition('?')[0].partition('#')[0]}?<query removed>: only http(s) URLs may "
            "carry a query (a presigned or SAS URL); for s3://, gs:// or az:// URLs give "
            "credentials as store options"
        )
    base, _, name = text.rpartition("/")
    if not name or base.endswith(":/"):
        raise InvalidURLError(
            f"URL {text!r} does not name an object (no file name after the last '/')"
        )
    return Location(url=text, base_url=base, key=name)


def _store_prefix(store: Any) -> str | None:
    """The path a user-given store is rooted at ('' for none), or None when it cannot tell."""
    prefix = getattr(store, "prefix", None)
    if prefix is not None:
        return str(prefix).strip("/")
    url = getattr(store, "url", None)  # obstore's HTTPStore
    if isinstance(url, str):
        return urlsplit(url).path.strip("/")
    return "" if hasattr(store, "config") or type(store).__name__ == "MemoryStore" else None


def locate_in_store(path_or_url: str | os.PathLike[str], store: Any) -> Location:
    """The Location of an object inside a store the caller built: its whole key, prefix kept.

    * a relative path is the key itself (``"a/x.tif"`` is ``a/x.tif`` in the store);
    * an absolute path or file:// URL is made relative to a local store's root;
    * a URL (``s3://bucket/a/x.tif``) keeps its whole path, less the store's own prefix.

    Never the base name alone: two ``x.tif`` in two folders are two objects.
    """
    text = os.fspath(path_or_url)
    prefix = _store_prefix(store)
    local_root = (
        prefix is not None
        and isinstance(getattr(store, "prefix", None), Path | str)
        and (
            type(store).__module__.startswith(("async_tiff", "obstore"))
            and "Local" in type(store).__name__
        )
    )
    if not _URL.match(text) and not os.path.isabs(text) and not text.startswith("~"):
        key = PurePosixPath(text.replace(os.sep, "/")).as_posix().lstrip("/")
        if ".." in PurePosixPath(key).parts or key in ("", "."):
            raise InvalidURLError(f"{text!r} is not a key inside the store (no '..', not empty)")
        if local_root:
            root = "/" + (prefix or "")
            full = os.path.join(root, key)
            return Location(url=Path(full).as_uri(), base_url=Path(root).as_uri(), key=key)
        return Location(url=f"store:///{quote(key)}", base_url="store:///", key=key)
    location = parse_location(text)
    if location.is_local:
        if not local_root:
            raise InvalidURLError(f"{location.url}: a local path needs a local store (or no store)")
        root = "/" + (prefix or "")
        rel = os.path.relpath(location.local_path, root)
        if rel.startswith(".."):
            raise InvalidURLError(f"{location.url} is not under the store's root {root!r}")
        return Location(url=location.url, base_url=Path(root).as_uri(), key=rel)
    if location.scheme == "memory":
        return location
    parts = urlsplit(location.url)
    key = parts.path.lstrip("/")
    if prefix is None:
        raise InvalidURLError(
            f"{location.url}: cannot tell where {type(store).__name__} is rooted; pass the key "
            "inside the store (a relative path) instead of a URL"
        )
    if prefix:
        if not (key + "/").startswith(prefix + "/"):
            raise InvalidURLError(f"{location.url} is not under the store's prefix {prefix!r}")
        key = key[len(prefix) + 1 :]
    base = location.url[: len(location.url) - len(key)].rstrip("/")
    return Location(url=location.url, base_url=base, key=key)


def canonical_json(value: Any) -> str:
    """One text for equal values, as a cache key: JSON with sorted keys, anything JSON cannot
    hold by its repr. The one spelling of store options (and URLs with them) as a key."""
    return json.dumps(value, sort_keys=True, default=repr)


_lock = threading.Lock()
STORES: Table[tuple[str, str], Any] = Table("georeader.stores", lambda s: s.store_cache_size)
"""(base URL, options) -> store; bounded (`Settings.store_cache_size`): a worker may see
millions of folders. A forked child starts empty (`process_state`'s fork rule)."""
_MEMORY_STORE: Any = None


def memory_store() -> Any:
    """The process-wide obstore MemoryStore behind memory:// URLs (tests, demos)."""
    global _MEMORY_STORE
    with _lock:
        if _MEMORY_STORE is None:
            from obstore.store import MemoryStore

            _MEMORY_STORE = MemoryStore()
        return _MEMORY_STORE


def native_remote_default() -> bool:
    """Whether remote reads use async-tiff's Rust-native stores (see module docstring)."""
    return settings().native_stores


def build_store(location: Location, *, native: bool = False, **config: Any) -> Any:
    """Build (uncached) the store for a location's base URL.

    `native=True` builds async-tiff's own (Rust-driven) store for remote URLs;
    obstore's stores are needed wherever Python reads from the store itself
    (the rasterio route's opener). obstore's own complaints while building (an
    Azure URL without an account, a value it cannot parse) become a
    `StoreConfigError` naming the URL.
    """
    try:
        return _build_store(location, native=native, **config)
    except GeoreaderError:
        raise
    except Exception as exc:
        from georeader.io.error_mapping import first_line

        summary = first_line(exc)
        hint = ""
        if "MissingAccount" in str(exc) or "Account must be specified" in summary:
            hint = (
                "; give account_name= (or set AZURE_STORAGE_ACCOUNT_NAME), or read a public "
                "container through its https://ACCOUNT.blob.core.windows.net/... URL"
            )
        raise StoreConfigError(
            f"{location.url}: cannot set up its store from the options given: {summary}{hint}"
        ) from None


def _build_store(location: Location, *, native: bool = False, **config: Any) -> Any:
    if location.scheme == "memory":
        return memory_store()
    if location.is_local:
        if config:
            raise InvalidURLError(f"local files take no store options; got {sorted(config)}")
        from async_tiff.store import LocalStore

        from georeader.io.error_mapping import map_store_error

        folder = unquote(urlsplit(location.base_url).path)
        if not _NATIVE_SAFE_NAME.match(location.key):
            return PathStore(folder)
        try:
            return LocalStore(folder)
        except Exception as exc:  # a missing folder: async-tiff's untyped GenericError (NotFound)
            raise map_store_error(exc, location.url, "opening its folder") from exc
    from obstore.store import from_url

    # georeader's own entry points (AsyncGeoTIFFReader.open, open_store) get the same
    # TypeError as daskcog's for a name the store does not take, not obstore's
    check_store_options(location.url, config)
    if "requester_pays" in config:
        config = dict(config)
        if config.pop("requester_pays"):
            if store_kind(location.url) != "s3":
                raise InvalidURLError(
                    f"{location.url}: requester_pays is an S3 option (the requester pays for the "
                    "requests); this URL is not an S3 URL"
                )
            config["request_payer"] = True
    config = allow_http_when_named(location, config)
    if "retry_config" not in config:
        # obstore's default retries for up to 3 minutes; ours are the one layer (georeader.io.retry)
        from georeader.io.retry import RetryPolicy

        config = {**config, "retry_config": RetryPolicy().store_retry_config(native=native)}
    if location.scheme in ("http", "https") and set(config) <= OBSTORE_COMMON:
        # an https URL of a bucket (virtual-hosted or path-style S3, Azure blob) with no
        # store options is read as the public HTTPS object it names, anonymously, the way
        # GDAL's /vsicurl/ reads it; obstore's from_url would pick the S3 store and ask
        # for credentials. Any store option (region, skip_signature, keys) picks the
        # bucket's own store instead.
        if native:
            from async_tiff.store import HTTPStore as NativeHTTPStore

            return NativeHTTPStore.from_url(location.base_url, **config)
        from obstore.store import HTTPStore

        return HTTPStore.from_url(location.base_url, **config)
    base_url = location.base_url
    as_s3 = s3_https_url(base_url)
    if as_s3 is not None:
        # obstore's from_url takes the region from such a URL and then refuses a region
        # option as a "duplicate key": give it the s3:// URL and the URL's region instead
        base_url, region = as_s3
        if region and not any(k.lower() in ("region", "aws_region") for k in config):
            config = {**config, "region": region}
    if native:
        from async_tiff.store import from_url as native_from_url

        return native_from_url(base_url, **config)
    return from_url(base_url, **config)


_S3_HOST = re.compile(
    r"^(?:(?P<bucket>.+)\.)?s3(?:[.-](?P<region>(?!amazonaws)[a-z0-9-]+))?\.amazonaws\.com$"
)


def s3_https_url(url: str) -> tuple[str, str | None] | None:
    """(s3:// URL, region or None) of an https URL of an S3 bucket, virtual-hosted
    (`https://bucket.s3.us-west-2.amazonaws.com/dir`) or path-style
    (`https://s3.us-west-2.amazonaws.com/bucket/dir`); None for any other URL."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        return None
    found = _S3_HOST.match((parts.hostname or "").lower())
    if found is None:
        return None
    path = parts.path.strip("/")
    bucket = found.group("bucket")
    if bucket is None:  # path style: the bucket is the first path segment
        bucket, _, path = path.partition("/")
        if not bucket:
            return None
    return f"s3://{bucket}/{path}".rstrip("/"), found.group("region")


def allow_http_when_named(location: Location, config: dict[str, Any]) -> dict[str, Any]:
    """`client_options["allow_http"]` set when the user named plain HTTP: an http:// URL,
    or an http:// endpoint (a local S3 server). obstore refuses plain HTTP unless told
    ("builder error" after retries); a user who wrote http:// asked for it. An explicit
    `allow_http` is kept as given."""
    named = location.scheme == "http" or any(
        "endpoint" in str(key).lower()
        and isinstance(value, str)
        and value.lower().startswith("http://")
        for key, value in config.items()
    )
    client = config.get("client_options")
    if not named or (
        isinstance(client, dict) and any(str(k).lower() == "allow_http" for k in client)
    ):
        return config
    return {**config, "client_options": {**(client or {}), "allow_http": True}}


def split_signed_url(
    path_or_url: str | os.PathLike[str], options: dict[str, Any]
) -> tuple[str | os.PathLike[str], dict[str, Any]]:
    """A signed http(s) URL's query moved into the store options (`url_query`).

    The query is a credential: from here on it travels with the other secrets
    (store options), and the object is known by its plain URL. Other paths and
    URLs are returned unchanged (a local file name may hold a '?').
    """
    if not isinstance(path_or_url, str) or "?" not in path_or_url:
        return path_or_url, options
    if urlsplit(path_or_url).scheme.lower() not in ("http", "https"):
        return path_or_url, options
    from georeader.io.signed_urls import split_query

    plain, query = split_query(path_or_url)
    if not query:
        return plain, options
    given = options.get("url_query")
    if given is not None and given != query:
        raise InvalidURLError(f"{plain}: a signed URL and a different url_query= were both given")
    return plain, {**options, "url_query": query}


def reader_location(
    path_or_url: str | os.PathLike[str] | Location, store: Any, options: dict[str, Any]
) -> tuple[Location, dict[str, Any]]:
    """What a reader is pointed at, as a Location, and its store options.

    A Location is taken as it is; a signed URL's query moves into the options
    (`split_signed_url`); with a caller's `store`, the object's whole key in it
    (`locate_in_store`), else the parsed path or URL.
    """
    if isinstance(path_or_url, Location):
        return path_or_url, options
    path_or_url, options = split_signed_url(path_or_url, options)
    if store is not None:
        return locate_in_store(path_or_url, store), options
    return parse_location(path_or_url), options


def identity_options(options: dict[str, Any]) -> dict[str, Any]:
    """The store options that tell objects apart: without a signed URL's query or signer,
    so that a re-signed URL is the same object (same cached header, same graph name)."""
    from georeader.io.store_options import SIGNING_OPTIONS

    if SIGNING_OPTIONS.isdisjoint(options):
        return options
    return {k: v for k, v in options.items() if k not in SIGNING_OPTIONS}


def _signed_store(location: Location, signing: dict[str, Any], config: dict[str, Any]) -> Any:
    """The per-process SignedStore of one object, given its newest query and signer."""
    from georeader.io.signed_urls import SignedStore

    if location.is_local or location.scheme == "memory":
        raise InvalidURLError(
            f"{location.url}: signed URLs and signers are for remote objects only"
        )
    config = allow_http_when_named(location, config)
    if "retry_config" not in config:
        from georeader.io.retry import RetryPolicy

        config = {**config, "retry_config": RetryPolicy().store_retry_config()}
    cache_key = (location.url, canonical_json({**config, "__signed__": True}))
    store = STORES.get_or_set(cache_key, lambda: SignedStore(location.url, config))
    store.update(query=signing.get("url_query") or "", sign=signing.get("sign"))
    return store


def forget_signed_stores() -> None:
    """Drop this process's signed stores (their tokens and signers); tests, key rotation."""
    STORES.drop_where(lambda key: "__signed__" in key[1])


def open_store(
    path_or_url: str | os.PathLike[str] | Location, *, native: bool = False, **config: Any
) -> tuple[Any, str]:
    """Return (store, key) for a path, URL or `Location`; stores are cached per process.

    `config` is passed to obstore's `from_url` (e.g. `region`, `endpoint`,
    `client_options={"allow_http": True}`, `retry_config`, credentials).
    A signed http(s) URL, `url_query=` or `sign=` (`sign(url) -> signed url`)
    give a `georeader.io.signed_urls.SignedStore` instead.
    """
    from georeader.io.store_options import SIGNING_OPTIONS

    if isinstance(path_or_url, Location):  # parsed once at the boundary: not again here
        location = path_or_url
    else:
        path_or_url, config = split_signed_url(path_or_url, config)
        location = parse_location(path_or_url)
    config = {k: v for k, v in config.items() if k not in READER_OPTIONS}
    if not SIGNING_OPTIONS.isdisjoint(config):
        signing = {k: config[k] for k in SIGNING_OPTIONS if k in config}
        rest = {k: v for k, v in config.items() if k not in SIGNING_OPTIONS}
        return _signed_store(location, signing, rest), location.key
    native = native and not location.is_local and location.scheme != "memory"
    kind = "path" if location.is_local and not _NATIVE_SAFE_NAME.match(location.key) else native
    cache_key = (location.base_url, canonical_json({**config, "__native__": kind}))
    store = STORES.get_or_set(cache_key, lambda: build_store(location, native=native, **config))
    return store, location.key
