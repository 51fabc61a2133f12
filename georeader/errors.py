"""One error tree for georeader (and daskcog, whose errors derive from it).

Every class also subclasses the built-in a caller would naturally catch
(`FileNotFoundError`, `PermissionError`, `ValueError`, ...), so code written
against rasterio-style exceptions keeps working, while `except GeoreaderError`
catches everything this package raises on purpose.
"""

from __future__ import annotations


class GeoreaderError(Exception):
    """Base class of every error raised on purpose by georeader and daskcog."""


class ReaderNotOpenedError(GeoreaderError, RuntimeError):
    """A reader's metadata or data was used before `await reader.open(...)`."""


class ObjectNotFoundError(GeoreaderError, FileNotFoundError):
    """The object (file, key, URL) does not exist."""


class AccessDeniedError(GeoreaderError, PermissionError):
    """The store refused access (HTTP 401/403, missing or wrong credentials)."""


class StoreReadError(GeoreaderError, OSError):
    """A read from the store failed for another reason (network, 5xx, truncated body)."""


class NotATiffError(GeoreaderError, ValueError):
    """The object is not a TIFF file (bad magic bytes or unreadable header)."""


class NoGeoreferenceError(GeoreaderError, ValueError):
    """The TIFF has no usable affine georeference (no GeoKeys, or GCPs only)."""


class UnsupportedLayoutError(GeoreaderError, ValueError):
    """The file's internal layout cannot be read exactly by any route we have."""


class TileDecodeError(GeoreaderError, ValueError):
    """A tile's bytes could not be decoded (corrupt data or an unexpected size)."""


class InvalidURLError(GeoreaderError, ValueError):
    """A path or URL cannot be turned into a store (unknown scheme, no object name)."""


class WindowError(GeoreaderError, ValueError):
    """A window, bounds or band selection is malformed or outside what is allowed."""


class InvalidHeaderError(NotATiffError):
    """The TIFF header is inconsistent or hostile (a looping IFD chain, sizes that disagree,
    a degenerate georeference, an unreadable tag): refused at open, never retried."""


class UnknownOptionError(GeoreaderError, TypeError):
    """A keyword argument that neither the entry point nor the URL's store takes (a
    misspelling, or an option of another store): refused at call time, before any graph."""


class StoreConfigError(GeoreaderError, ValueError):
    """The store for a URL cannot be built from the options given (an Azure URL without an
    account, a value obstore cannot parse): refused before any request, never retried."""


class BoundsOutsideError(WindowError):
    """Bounds that do not overlap the data at all: most often bounds in another CRS
    (degrees on a projected file). The message names both bounds and the CRS."""


class OptionValueError(GeoreaderError, ValueError):
    """A keyword's value that cannot mean anything (`errors="skip"`, `loop="main"`): refused
    at call time, naming the keyword and the values it takes."""
