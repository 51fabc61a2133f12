"""Objects behind signed URLs: presigned S3, Azure SAS, any token in an HTTP query.

A signed URL's query is a credential: whoever holds it reads the object. So
it is handled like a secret key. It is split off the URL as soon as the URL
comes in (`split_query`), the object is known by its plain URL everywhere
(readers, cache keys, error messages), and every error that comes back
through here has the query and each of its values removed (`redact`).

`SignedStore` is the store of one such object: an obspec-style store
(`get_range_async` / `get_ranges_async`, what async-geotiff reads through)
over obstore's `HTTPStore`, which sends the query with every request. It
keeps the current signed URL and, when given one, a signer (`sign(url) ->
signed url`, e.g. `planetary_computer.sign`), which it calls

* before a request, when the URL's own expiry time (`X-Amz-Date` +
  `X-Amz-Expires`, Azure's `se`, `X-Goog-Date` + `X-Goog-Expires`) is less
  than `Settings.signed_url_margin` seconds away, and
* once after a request is refused (HTTP 401 / 403): the request is retried
  with the new URL; refused again, it is an `AccessDeniedError` naming the
  plain URL.

Concurrent reads that fail together sign once: a generation counter tells a
waiting task that another already renewed the URL. The store is cached per
process by plain URL (`georeader.io.stores`), and a later `open_store` with a
new query or signer updates it in place, so headers cached with the store
keep working with the new token.
"""

from __future__ import annotations

import asyncio
import calendar
import inspect
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from georeader.errors import AccessDeniedError, InvalidURLError, StoreReadError
from georeader.io.error_mapping import first_line, strip_queries
from georeader.process_state import settings

Signer = Callable[[str], Any]
"""`sign(plain_url) -> signed_url` (a str, or an awaitable of one)."""


SIGNED_STORE_OPTIONS = frozenset({"client_options", "retry_config"})
"""The other store options a signed URL takes (it is read over plain HTTP(S))."""

_DENIED = re.compile(r"status code: (401|403)\b|PermissionDenied|Unauthenticated", re.IGNORECASE)


def split_query(url: str) -> tuple[str, str]:
    """(URL without its query, the query) of a URL; a fragment is refused (it is never sent)."""
    head, _, query = url.partition("?")
    if "#" in url:
        raise InvalidURLError(
            f"{head.partition('#')[0]}: URLs with a fragment ('#...') are not supported"
        )
    return head, query


def redact(text: str, query: str) -> str:
    """`text` with every URL's query and each value of `query` removed."""
    text = strip_queries(text)
    values = {query} | {v for _, v in parse_qsl(query, keep_blank_values=True)}
    for value in sorted(values, key=len, reverse=True):
        if len(value) < 4:
            continue
        for form in {value, quote(value, safe=""), quote(value, safe="/"), unquote(value)}:
            text = text.replace(form, "<redacted>")
    return text


def validity(query: str) -> tuple[float | None, float | None]:
    """(signed at, expires at) of a signed URL in epoch seconds, where its query says."""
    params = {k.lower(): v for k, v in parse_qsl(query, keep_blank_values=True)}
    try:
        for date_key, expires_key in (
            ("x-amz-date", "x-amz-expires"),
            ("x-goog-date", "x-goog-expires"),
        ):
            if date_key in params and expires_key in params:
                start = calendar.timegm(time.strptime(params[date_key], "%Y%m%dT%H%M%SZ"))
                return float(start), float(start + int(params[expires_key]))
        if "se" in params:  # Azure SAS: ISO 8601 UTC times, `st` (start) optional
            signed_at = _azure_time(params["st"]) if "st" in params else None
            return signed_at, _azure_time(params["se"])
    except (ValueError, OverflowError):
        pass
    return None, None


def _azure_time(value: str) -> float:
    value = value.rstrip("Z")
    layout = "%Y-%m-%d"
    if "T" in value:
        layout = "%Y-%m-%dT%H:%M:%S" if value.count(":") == 2 else "%Y-%m-%dT%H:%M"
    return float(calendar.timegm(time.strptime(value.partition(".")[0], layout)))


def expiry(query: str) -> float | None:
    """When a signed URL stops working (epoch seconds), if its query says so."""
    return validity(query)[1]


def renew_at(query: str) -> float | None:
    """When to ask a signer for a new URL: `Settings.signed_url_margin` before expiry, or a
    quarter of the URL's life when that is shorter (a fresh URL must not look expired
    already)."""
    start, end = validity(query)
    if end is None:
        return None
    margin = settings().signed_url_margin
    margin = margin if start is None else min(margin, (end - start) / 4)
    return end - margin


def is_denied(exc: BaseException) -> bool:
    return isinstance(exc, PermissionError) or bool(_DENIED.search(str(exc)))


class SignedStore:
    """The store of one object behind a signed URL (see the module docstring)."""

    def __init__(self, url: str, config: dict[str, Any]) -> None:
        unknown = sorted(set(config) - SIGNED_STORE_OPTIONS)
        if unknown:
            raise InvalidURLError(
                f"{url}: a signed URL is read over HTTP(S) with only its query as credentials; "
                f"store options {unknown} do not apply (give client_options / retry_config only)"
            )
        self.url = url
        self._config = dict(config)
        self._lock = threading.Lock()
        self._sign_lock = threading.Lock()
        self._query = ""
        self._given = ""
        """The last query handed to `update` (renewals by the signer do not change it)."""
        self._signer: Signer | None = None
        self._inner: Any = None
        self._generation = 0

    def __repr__(self) -> str:
        return f"SignedStore({self.url!r}, signer={self._signer is not None})"

    def __reduce__(self) -> Any:
        raise TypeError(f"{self!r} holds a signed URL and does not pickle; pass the URL instead")

    # -- credentials ---------------------------------------------------------------
    def update(self, *, query: str = "", sign: Signer | None = None) -> None:
        """Take a newer signed query and / or signer (the newest given wins)."""
        with self._lock:
            if sign is not None:
                self._signer = sign
            if not query or query == self._given:
                return  # the same URL again (each task hands it over): keep any renewal
            self._given = query
            current, newer = expiry(self._query), expiry(query)
            if current is not None and newer is not None and newer < current:
                return  # older than what a signer gave us since
            self._set(self.url, query)

    def _set(self, signed_plain: str, query: str) -> None:
        """Read through `signed_plain?query` from now on (call with `_lock` held).

        `signed_plain` is the signed URL without its query: a signer may turn an
        az:// or s3:// URL into the https URL it signs; the key stays the file name.
        """
        from obstore.store import HTTPStore

        directory = signed_plain.rpartition("/")[0]
        self._inner = HTTPStore.from_url(f"{directory}?{query}", **self._config)
        self._query = query
        self._generation += 1

    def _state(self) -> tuple[int, Any, str, Signer | None]:
        with self._lock:
            return self._generation, self._inner, self._query, self._signer

    @staticmethod
    def _needs_signing(inner: Any, query: str, signer: Signer | None) -> bool:
        if signer is None:
            return False
        if inner is None:
            return True
        when = renew_at(query)
        return when is not None and time.time() >= when

    def _resign(self, after: int) -> None:
        """Ask the signer for a new URL unless another task did since generation `after`."""
        with self._sign_lock:
            generation, _, query, signer = self._state()
            if generation > after or signer is None:
                return
            name = getattr(signer, "__name__", type(signer).__name__)
            try:
                signed = signer(self.url)
                if inspect.isawaitable(signed):
                    signed = asyncio.run(_awaited(signed))
            except Exception as exc:  # noqa: BLE001 - any failure of user code: a typed error
                failure = f"{type(exc).__name__}: {redact(first_line(exc), query)}"
                signed = None
            else:
                failure = ""
            if (
                failure
                or not isinstance(signed, str)
                or urlsplit(signed).scheme not in ("http", "https")
            ):
                raise AccessDeniedError(
                    f"{self.url}: the signer {name} "
                    + (f"failed: {failure}" if failure else f"returned {type(signed).__name__}, "
                       "not a signed http(s) URL")
                )
            plain, new_query = split_query(signed)
            if plain.rpartition("/")[2] != self.url.rpartition("/")[2]:
                raise AccessDeniedError(
                    f"{self.url}: the signer {name} returned the URL of another object "
                    f"({plain.rpartition('/')[2]})"
                )
            with self._lock:
                self._set(plain, new_query)

    def current(self) -> Any:
        """The obstore store for the current signed URL, signing first if needed (sync)."""
        generation, inner, query, signer = self._state()
        if self._needs_signing(inner, query, signer):
            self._resign(generation)
            generation, inner, query, signer = self._state()
        if inner is None:
            raise AccessDeniedError(f"{self.url}: no signed URL and no signer to make one")
        return inner

    async def _current_async(self) -> tuple[int, Any]:
        generation, inner, query, signer = self._state()
        if self._needs_signing(inner, query, signer):
            await asyncio.to_thread(self._resign, generation)
            generation, inner, query, signer = self._state()
        if inner is None:
            raise AccessDeniedError(f"{self.url}: no signed URL and no signer to make one")
        return generation, inner

    # -- obspec reads ----------------------------------------------------------------
    async def get_range_async(self, path: str, **kwargs: Any) -> Any:
        import obstore

        return await self._call(obstore.get_range_async, path, kwargs)

    async def get_ranges_async(self, path: str, **kwargs: Any) -> Any:
        import obstore

        return await self._call(obstore.get_ranges_async, path, kwargs)

    async def _call(self, fn: Callable[..., Any], path: str, kwargs: dict[str, Any]) -> Any:
        generation, inner = await self._current_async()
        error = await _attempt(fn, inner, path, kwargs)
        if not isinstance(error, BaseException):
            return error
        if is_denied(error) and self._state()[3] is not None:
            await asyncio.to_thread(self._resign, generation)
            generation, inner = await self._current_async()
            error = await _attempt(fn, inner, path, kwargs)
            if not isinstance(error, BaseException):
                return error
            if is_denied(error):
                raise self._denied(error, renewed=True)
        raise self._clean(error)

    def _denied(self, exc: BaseException, *, renewed: bool) -> AccessDeniedError:
        detail = redact(first_line(exc), self._query)
        if renewed:
            why = "refused even after signing the URL again (the signer's tokens are not valid)"
        else:
            ends = expiry(self._query)
            when = (
                "; its signature expired at "
                f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(ends))}"
                if ends is not None and ends <= time.time()
                else ""
            )
            why = f"the signed URL was refused{when}; pass sign=... to renew it"
        error = AccessDeniedError(f"{self.url}: access denied: {why}: {detail}")
        error.__suppress_context__ = True
        return error

    def _clean(self, exc: BaseException) -> BaseException:
        """The same error with the query removed from its message (and no chained original)."""
        if is_denied(exc):
            return self._denied(exc, renewed=False)
        text = redact(str(exc), self._query)
        try:
            clean = type(exc)(text)
        except Exception:  # noqa: BLE001 - a type that takes other arguments
            clean = StoreReadError(f"{self.url}: {text}")
        clean.__suppress_context__ = True
        return clean


async def _attempt(fn: Callable[..., Any], inner: Any, path: str, kwargs: dict[str, Any]) -> Any:
    """`await fn(inner, path, **kwargs)`, or the exception it raised (never re-raised here,
    so that the caller's error carries no chained original holding the signed URL)."""
    try:
        return await fn(inner, path, **kwargs)
    except Exception as exc:  # noqa: BLE001 - returned to the caller, which classifies it
        return exc


async def _awaited(value: Any) -> Any:
    return await value


class SignedFile:
    """A read-only seekable file over a SignedStore, for GDAL's opener (the rasterio route).

    obstore's `open_reader` asks for the size with a HEAD request, which a URL
    signed for GET refuses (the method is part of the signature): here the size
    comes with the first ranged GET. Reads go through the store's renewal and
    redaction, `BUFFER` bytes ahead. Called from worker threads (no running loop).
    """

    BUFFER = 256 * 1024

    def __init__(self, store: SignedStore, key: str) -> None:
        self._store = store
        self._key = key
        self._pos = 0
        self._buffer = b""
        self._buffer_start = 0
        self._size = 0
        self._fetch(0)

    def _fetch(self, start: int, length: int = 0) -> None:
        size, data = _run_sync(
            self._store._call(
                _ranged_get, self._key, {"start": start, "length": max(length, self.BUFFER)}
            )
        )
        self._size, self._buffer, self._buffer_start = size, data, start

    def read(self, size: int = -1) -> bytes:
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        if end <= self._pos:
            return b""
        if not (self._buffer_start <= self._pos and end <= self._buffer_start + len(self._buffer)):
            self._fetch(self._pos, end - self._pos)
        offset = self._pos - self._buffer_start
        data = self._buffer[offset : offset + end - self._pos]
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._buffer = b""

    def __enter__(self) -> SignedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _ranged_get(inner: Any, path: str, *, start: int, length: int) -> tuple[int, bytes]:
    """(object size, bytes from `start`, at most `length`) in one ranged GET."""
    import obstore

    result = await obstore.get_async(inner, path, options={"range": (start, start + length)})
    return int(result.meta["size"]), bytes(await result.bytes_async())


def _run_sync(coro: Any) -> Any:
    """Run a coroutine to its end from sync code, also inside a running loop's thread
    (GDAL's opener is called there while a header is described): then in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
