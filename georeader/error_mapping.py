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
    NotATiffError,
    ObjectNotFoundError,
    StoreReadError,
)

_NOT_FOUND = re.compile(r"NotFound|not found|No such file|\b404\b|NoSuchKey|NoSuchBucket", re.I)
_DENIED = re.compile(
    r"PermissionDenied|Unauthenticated|\b40[13]\b|Forbidden|AccessDenied|"
    r"SignatureDoesNotMatch|InvalidAccessKeyId|permission denied",
    re.I,
)
_NOT_TIFF = re.compile(r"magic bytes|not a tiff|Invalid TIFF|unexpected end|Requested range was invalid", re.I)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def map_store_error(exc: BaseException, url: str, doing: str) -> GeoreaderError:
    """The typed error for an exception raised while `doing` something with `url`."""
    if isinstance(exc, GeoreaderError):
        return exc
    message = str(exc)
    summary = first_line(exc)
    if isinstance(exc, FileNotFoundError) or _NOT_FOUND.search(message):
        return ObjectNotFoundError(f"{url}: not found ({doing}): {summary}")
    if isinstance(exc, PermissionError) or _DENIED.search(message):
        return AccessDeniedError(f"{url}: access denied ({doing}): {summary}")
    if doing.startswith("open") and _NOT_TIFF.search(message):
        return NotATiffError(f"{url}: not a readable TIFF ({doing}): {summary}")
    return StoreReadError(f"{url}: read failed ({doing}): {summary}")
