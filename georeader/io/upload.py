"""Outputs written to object stores: finish the file locally, then one multipart upload.

GDAL writes a COG by seeking back and forth (overviews, then the IFDs in
front), so the file is finished on local disk first and uploaded once it is
complete. obstore's `put` streams a local file in parts (`UPLOAD_PART` bytes,
`UPLOAD_CONCURRENCY` parts in flight: memory stays near their product, whatever
the file's size), and an upload is atomic: an object appears only when the
upload completes, so a failed write leaves no partial object (and an object
already there stays as it was). The local file is removed either way.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from georeader.errors import GeoreaderError
from georeader.io.error_mapping import map_store_error
from georeader.io.stores import REMOTE_SCHEMES, open_store, parse_location

UPLOAD_PART = 8 * 1024 * 1024
"""Bytes per part of a multipart upload (S3 wants at least 5 MiB but for the last)."""
UPLOAD_CONCURRENCY = 4
"""Parts uploaded at once."""


class UploadError(GeoreaderError, OSError):
    """Uploading a finished output to its object store failed (nothing was left there)."""


def is_store_url(path: str | os.PathLike[str]) -> bool:
    """True for an object-store URL (s3://, gs://, az://, memory://, ...), False for local paths."""
    if not isinstance(path, str):
        return False
    scheme = urlsplit(path).scheme.lower()
    return scheme in REMOTE_SCHEMES or scheme == "memory"


@contextmanager
def staged_upload(
    url: str, *, tmpdir: str | os.PathLike[str] | None = None, **store_options: Any
) -> Iterator[Path]:
    """A local path to write the output to; uploaded to `url` when the block ends cleanly.

    The store is built before anything is written, so a bad URL or option fails
    at once rather than after a long compute.
    """
    if "?" in url:
        raise UploadError(
            f"{url.partition('?')[0]}: outputs are written with store credentials, not to signed "
            "URLs; give the plain URL and credentials"
        )
    location = parse_location(url)
    if location.is_local:
        raise UploadError(
            f"{url}: staged_upload is for object-store URLs; write local files directly"
        )
    store, key = open_store(location.url, **store_options)
    if location.scheme in ("http", "https"):
        raise UploadError(f"{location.url}: http(s) URLs cannot be written to; use s3://, gs:// or az://")
    folder = tempfile.mkdtemp(prefix=".daskcog-upload-", dir=tmpdir)
    try:
        local = Path(folder) / location.key
        yield local
        upload_file(local, store, key, location.url)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def upload_file(local: Path, store: Any, key: str, url: str) -> None:
    """One (multipart, when larger than a part) upload of a finished local file."""
    import obstore

    try:
        obstore.put(
            store, key, local, chunk_size=UPLOAD_PART, max_concurrency=UPLOAD_CONCURRENCY
        )
    except Exception as exc:  # noqa: BLE001 - every store failure becomes one typed error
        mapped = map_store_error(exc, url, "uploading the output")
        raise UploadError(f"{mapped} (nothing was written to {url})") from None
