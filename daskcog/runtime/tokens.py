"""Deterministic tokens for the callables a spec carries (`patch_url`, `groupby`, `sign`).

Why: a graph's keys come from its spec's token, and the same call must give the same keys
in every run (so a cluster reuses results and a restarted client resubmits the same
graph). `repr` of a function holds its memory address, which differs between runs; dask's
`tokenize(..., ensure_deterministic=True)` tokenizes a module-level function by its
qualified name and a lambda or closure by its pickled code, and refuses what it cannot
tokenize deterministically. That refusal is turned into a typed error that says what to
pass instead.
"""

from __future__ import annotations

from typing import Any

from dask.base import tokenize
from dask.tokenize import TokenizationError

from georeader.errors import GeoreaderError


class NonDeterministicCallableError(GeoreaderError, TypeError):
    """A callable given to a graph cannot be tokenized the same way in every run."""


def callable_token(fn: Any, what: str) -> str | None:
    """A token of `fn` (None for None) equal in every run for an equal function."""
    if fn is None:
        return None
    try:
        return tokenize(fn, ensure_deterministic=True)
    except TokenizationError as exc:
        raise NonDeterministicCallableError(
            f"{what}={fn!r} cannot be given the same graph key in every run ({exc}); pass a "
            "module-level function, a functools.partial of one, or a lambda without "
            "unpicklable state"
        ) from None
