"""georeader.io: where bytes come from and go to.

A URL becomes a `Location` and an obstore store (`parse_location`, `open_store`,
`build_store`); store options are checked by name (`check_store_options`,
`check_sources_options`); signed URLs are split, redacted and renewed
(`split_signed_url`, `SIGNING_OPTIONS`); store errors become georeader's typed
errors (`map_store_error`); transient failures are retried by a `RetryPolicy`;
fetched byte ranges are shared through `RANGE_CACHE`; finished files are uploaded
(`staged_upload`). daskcog imports these names from here, never from the modules
that define them, so the modules can move.
"""

from georeader.io.error_mapping import first_line, map_store_error
from georeader.io.range_cache import CACHE as RANGE_CACHE
from georeader.io.range_cache import RangeCache
from georeader.io.retry import RetryPolicy
from georeader.io.signed_urls import expiry, redact, split_query
from georeader.io.store_options import (
    SIGNING_OPTIONS,
    check_sources_options,
    check_store_options,
    store_kind,
    stub_names,
)
from georeader.io.stores import (
    Location,
    allow_http_when_named,
    build_store,
    canonical_json,
    check_not_folder,
    forget_signed_stores,
    identity_options,
    open_store,
    parse_location,
    s3_https_url,
    split_signed_url,
)
from georeader.io.upload import UPLOAD_PART, UploadError, is_store_url, staged_upload

__all__ = [
    "RANGE_CACHE", "SIGNING_OPTIONS", "UPLOAD_PART", "Location", "RangeCache", "RetryPolicy",
    "UploadError", "allow_http_when_named", "build_store", "canonical_json",
    "check_not_folder", "check_sources_options", "check_store_options", "expiry", "first_line",
    "forget_signed_stores", "identity_options", "is_store_url", "map_store_error",
    "open_store", "parse_location", "redact", "s3_https_url", "split_query",
    "split_signed_url", "staged_upload", "store_kind", "stub_names",
]
