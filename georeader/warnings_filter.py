"""One way to silence a known spurious warning: a narrow filter kept in the process's filters.

Why not `warnings.catch_warnings` around the call that warns: before Python 3.14 it swaps
the filters (and `showwarning`) of the whole process, not of one thread. Opening headers
on the I/O loop while a user's thread, or a warp in another Dask thread, sits in its own
`catch_warnings`, the two restore each other's filters: the spurious warning leaks, a
user's own warnings are hidden for as long as the broad "ignore" is in place, and an
unlucky interleaving leaves that "ignore" in the filters for good.

A filter narrowed to one category, one message and one module is safe to keep for the
life of the process: it matches only the warning we know is spurious, issued where we
know it is (a user's own call that warns the same way is a different module). Code that
enters and leaves `catch_warnings` (pytest, a caller, rasterio in another thread)
restores the filters it saw and may drop ours, so `ignore_spurious` is called before each
call that may warn, and puts it back when it is missing or behind another filter that
would match first (a scan of a few entries).
"""

from __future__ import annotations

import re
import threading
import warnings

__all__ = ["ignore_spurious"]

_lock = threading.Lock()


def ignore_spurious(category: type[Warning], message: str, module: str) -> None:
    """Make sure the process ignores `category` warnings whose message starts with the text
    `message` (literal, case-insensitive as `warnings` matches) issued from the module
    named exactly `module` (the module `warnings` attributes the warning to: the caller's,
    for a library that warns with `stacklevel=2`).

    "Ignores": the first filter such a warning meets is ours, as `warnings` tries them in
    order (one a caller put before it, say `simplefilter("always")`, would otherwise show
    the spurious warning: ours then goes back to the front; a narrow entry there changes
    nothing else). Idempotent and cheap when so (a scan of a few entries); thread-safe in
    what it changes (one entry moved or added, never a swap of the whole list)."""
    if _first_is_ours(category, message, module):
        return
    with _lock:
        if not _first_is_ours(category, message, module):
            warnings.filterwarnings(  # at the front, dropping an older copy of itself
                "ignore", message=re.escape(message), category=category,
                module=re.escape(module) + r"\Z",
            )


def _first_is_ours(category: type[Warning], message: str, module: str) -> bool:
    """Whether the first filter a `category` warning `message...` from `module` meets is
    our narrow "ignore" (the order and tests of `warnings.warn_explicit`)."""
    ours_message, ours_module = re.escape(message), re.escape(module) + r"\Z"
    for action, found_message, found_category, found_module, lineno in list(warnings.filters):
        if (
            (found_message is None or found_message.match(message))
            and issubclass(category, found_category)
            and (found_module is None or found_module.match(module))
            and lineno == 0
        ):
            return (
                action == "ignore" and found_category is category
                and found_message is not None and found_message.pattern == ours_message
                and found_module is not None and found_module.pattern == ours_module
            )
    return False
