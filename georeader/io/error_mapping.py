"""Map async-tiff / obstore exceptions to georeader's typed errors.

async-tiff wraps store errors in `AsyncTiffException` or `TypeError`, and the
original kind (NotFound, PermissionDenied, ...) survives only in the message;
obstore's own stores raise typed errors. Both end here, and every mapped error
names the URL.
"""

from __future__ import annotations

import re

from georeader.errors import (
    AccessDeniedError,
    GeoreaderError,
    InvalidHeaderError,
    NotATiffError,
    ObjectNotFoundError,
    StoreReadError,
    TileDecodeError,
)

# The HTTP status obstore reports ("Server returned non-2xx status code: 404 Not Found") and the
# name of obstore's error class ("FileNotFoundError: ...", "Debug source: | NotFound {") come
# before the server's response body, which is free text. Bare numbers are never matched: the
# message also holds the URL and the request's duration ("in 404.2µs", "in 403.1ms"), and a
# 503 that took 404 microseconds is not a missing object.
_STATUS_IS = r"(?:status code|HTTP response code): "
_STATUS = re.compile(_STATUS_IS + r"(\d{3})\b")
_NOT_FOUND_STATUS = frozenset({404, 410})
_DENIED_STATUS = frozenset({401, 403})


def _any_of(*alternatives: str) -> re.Pattern[str]:
    """One case-insensitive pattern matching any of `alternatives` (each a regex)."""
    return re.compile("|".join(alternatives), re.IGNORECASE)


_NOT_FOUND = _any_of(
    "FileNotFoundError", r"\bNotFound\b", r"\bnot found\b", "No such file", "NoSuchKey",
    "NoSuchBucket",
)
_DENIED = _any_of(
    "PermissionDenied", "Unauthenticated", r"\bForbidden\b", "AccessDenied",
    "SignatureDoesNotMatch", "InvalidAccessKeyId", "permission denied",
)
_NOT_TIFF = _any_of("magic bytes", "not a tiff", "Invalid TIFF", "unexpected end")
_TRANSIENT = _any_of(
    "error sending request", "error decoding response body", "body error", "connection", "reset",
    "broken pipe", "timed? ?out", "timeout", _STATUS_IS + r"(?:5\d\d|429|408)\b",
    r"Generic \w+ error", "ObjectStore", "incomplete", "unexpected eof", "os error", r"\bIO\b",
    "I/O",
)
"""What a store's I/O failure says (obstore / object_store messages): worth another attempt."""
_PERMANENT = _any_of("panicked", "not understood", "could not convert")
_PAST_END = _any_of(
    "Requested range was invalid", "Invalid range: Wanted range starting at",
    _STATUS_IS + r"416\b", "Range Not Satisfiable", "InvalidRange",
)


def _kind(exc: BaseException, message: str) -> str | None:
    """Return "not found", "denied" or None (anything else): by type, then status, then words."""
    if isinstance(exc, FileNotFoundError):
        return "not found"
    if isinstance(exc, PermissionError):
        return "denied"
    status = _STATUS.search(message)
    if status is not None:
        code = int(status.group(1))
        if code in _NOT_FOUND_STATUS:
            return "not found"
        if code in _DENIED_STATUS:
            return "denied"
        return None  # 5xx, 429, 416...: whatever words the response body holds
    if _NOT_FOUND.search(message):
        return "not found"
    if _DENIED.search(message):
        return "denied"
    return None


_URL_WITH_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#\"'<>]*)\?[^\s\"'<>]*", re.IGNORECASE)


def strip_queries(text: str) -> str:
    """`text` without the query of any URL in it: obstore's messages show the URLs it
    requested, and a query may be a SAS token (Azure credentials) or a presigned signature."""
    return _URL_WITH_QUERY.sub(r"\1?<query removed>", text)


_BODY = re.compile(r"(" + _STATUS_IS + r"\d{3}(?: [A-Za-z][A-Za-z -]*?)?):\s.*$")
"""A status line followed by the server's response body (an HTML page, an XML error)."""
_NO_CREDENTIALS = _any_of(
    r"169\.254\.169\.254", r"169\.254\.170\.2", "NoCredentialProviders", "MissingAccount",
    r"credential (?:error|provider)", "Unable to open service account",
)
"""A store that found no credentials and asked the cloud's instance-metadata endpoint."""
_THROTTLED = _any_of(_STATUS_IS + r"(?:429|503)\b", "SlowDown", "Too Many Requests")


def first_line(exc: BaseException) -> str:
    """The error's first line, without a signed URL's query or the server's response body
    (a 404's HTML page says nothing the status does not)."""
    text = str(exc).strip().splitlines()
    return _BODY.sub(r"\1", strip_queries(text[0])) if text else type(exc).__name__


def _shorten(exc: BaseException, summary: str) -> None:
    """Keep `exc` as the typed error's cause, short: its first line only, no frames.

    obstore's messages carry the response body and Rust's debug dump (a 404 printed
    96 lines), and the frames are georeader's retry plumbing; the typed error already
    says what happened. The full text stays on the typed error as `.detail`."""
    try:
        if not hasattr(exc, "georeader_detail"):
            exc.georeader_detail = strip_queries(str(exc))  # type: ignore[attr-defined]
        exc.args = (summary,)
        exc.__traceback__ = None
    except (AttributeError, TypeError):  # an exception type that refuses: keep it whole
        pass


def _remote(url: str) -> bool:
    return "://" in url and not url.startswith(("file:", "memory:"))


def _hint(kind: str | None, message: str, url: str) -> str:
    """What the user can do, where one thing helps."""
    if kind == "denied" and _remote(url):
        if _NO_CREDENTIALS.search(message):
            return (
                "; no credentials were found: give them as store options (or the cloud's "
                "environment variables, or credentials=), or skip_signature=True for public data"
            )
        return "; check the credentials, or pass skip_signature=True for public data"
    if kind is None and _THROTTLED.search(message):
        return "; the server is throttling: lower max_concurrency= (or retry later)"
    return ""


def map_store_error(exc: BaseException, url: str, doing: str) -> GeoreaderError:
    """The typed error for an exception raised while `doing` something with `url`.

    The original exception is left short (see `_shorten`), so a caller's
    `raise map_store_error(exc, ...) from exc` prints one line of cause, not a page."""
    if isinstance(exc, GeoreaderError):
        return exc
    message = str(exc)
    summary = first_line(exc)
    mapped = _mapped(exc, message, summary, url, doing)
    detail = getattr(exc, "georeader_detail", None) or strip_queries(message)
    mapped.detail = detail  # type: ignore[attr-defined]
    _shorten(exc, summary)
    return mapped


def _mapped(
    exc: BaseException, message: str, summary: str, url: str, doing: str
) -> GeoreaderError:
    kind = _kind(exc, message)
    if kind is None and _remote(url) and _NO_CREDENTIALS.search(message):
        kind = "denied"  # no credentials anywhere: the store never got to ask for the object
    hint = _hint(kind, message, url)
    if hint and hint[2:] in message:  # mapped again on its way up: say it once
        hint = ""
    if kind == "not found":
        return ObjectNotFoundError(f"{url}: not found ({doing}): {summary}")
    if kind == "denied":
        return AccessDeniedError(f"{url}: access denied ({doing}): {summary}{hint}")
    if _PAST_END.search(message):
        # a header or tile offset beyond the object's end: truncated or corrupt, never transient
        kind_of = InvalidHeaderError if doing.startswith("open") else TileDecodeError
        return kind_of(
            f"{url}: {doing}: a byte range starts past the end of the object (the file is "
            f"truncated or its offsets are corrupt): {summary}"
        )
    if doing.startswith("open") and _NOT_TIFF.search(message):
        return NotATiffError(f"{url}: not a readable TIFF ({doing}): {summary}")
    if _PERMANENT.search(message) or not (
        _TRANSIENT.search(message) or isinstance(exc, (OSError, TimeoutError))
    ):
        # not a store's I/O failure (a Rust panic on a corrupt tag, a parse error): the same
        # bytes fail the same way, so never retried
        if doing.startswith("open"):
            return InvalidHeaderError(f"{url}: the header cannot be read ({doing}): {summary}")
        return TileDecodeError(f"{url}: {doing} failed on the file's data: {summary}")
    return StoreReadError(f"{url}: read failed ({doing}): {summary}{hint}")
