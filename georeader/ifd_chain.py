"""A bounded walk of a TIFF's IFD chain, before async-tiff parses it.

async-tiff follows "next IFD" offsets without a cycle check or a bound: an IFD
pointing to itself (or two pointing to each other) made an open allocate until
the process aborted (measured: 1.7 GB resident, then `memory allocation of
5335154688 bytes failed` and SIGABRT after 44 s), and it cannot be told to stop.
So the chain is walked here first, from the bytes of the header prefetch: a
repeated offset, more than `MAX_IFDS` IFDs, more than `MAX_TAGS` entries in an
IFD or a tag whose values would take more than `MAX_TAG_BYTES` is refused with
`InvalidHeaderError`. The walk reads only the fixed-size parts (entry counts and
next offsets); for a COG they lie in the first request, which async-tiff then
gets from memory (`HeaderBytes`), so the check costs no extra request.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable

from georeader.errors import InvalidHeaderError

MAX_IFDS = 4096
"""Far above any real file (COGs: one per level and mask; multi-page TIFFs: hundreds)."""
MAX_TAGS = 4096
MAX_TAG_BYTES = 256 * 2**20
"""A 2^31-tile offsets array (the largest real images need a few MB) stays refused."""

_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4,
               16: 8, 17: 8, 18: 8}

ENUMERATED = {
    284: ("PlanarConfiguration", frozenset({1, 2})),
    317: ("Predictor", frozenset({1, 2, 3})),
}
"""Tags whose unknown values async-tiff replaces silently (Predictor 7 -> none, Planar 3 ->
chunky: measured), which would decode predicted bytes as pixels: refused here from raw bytes."""

ReadRange = Callable[[int, int], Awaitable[bytes]]
"""(start, length) -> bytes of the object (short at the end of the file)."""


async def check_ifd_chain(read: ReadRange, head: bytes, url: str) -> int:
    """Walk the chain from `head` (the object's first bytes); return the number of IFDs.

    Bytes past `head` are fetched with `read`. Files that are not TIFFs are left
    to async-tiff, which names the problem itself.
    """
    if len(head) < 8 or head[:2] not in (b"II", b"MM"):
        return 0
    order = "<" if head[:2] == b"II" else ">"
    (version,) = struct.unpack_from(order + "H", head, 2)
    if version == 42:
        count_fmt, entry_size, offset_fmt = "H", 12, "I"
        (offset,) = struct.unpack_from(order + "I", head, 4)
    elif version == 43 and len(head) >= 16:
        count_fmt, entry_size, offset_fmt = "Q", 20, "Q"
        (offset,) = struct.unpack_from(order + "Q", head, 8)
    else:
        return 0
    count_size = struct.calcsize(count_fmt)
    offset_size = struct.calcsize(offset_fmt)
    chunks: dict[int, bytes] = {0: head}

    async def get(start: int, length: int) -> bytes:
        for base, data in chunks.items():
            if base <= start and start + length <= base + len(data):
                return data[start - base : start - base + length]
        data = bytes(await read(start, max(length, 16384)))
        chunks[start] = data
        if len(data) < length:
            raise InvalidHeaderError(
                f"{url}: the header points past the end of the file (byte {start + length}); "
                "the file is truncated or corrupt"
            )
        return data[:length]

    seen: set[int] = set()
    while offset:
        if offset in seen:
            raise InvalidHeaderError(
                f"{url}: the IFD chain loops (IFD {len(seen) - 1} points back to byte {offset}); "
                "the file is corrupt"
            )
        if len(seen) >= MAX_IFDS:
            raise InvalidHeaderError(f"{url}: more than {MAX_IFDS} IFDs; refused as corrupt")
        seen.add(offset)
        (entries,) = struct.unpack(order + count_fmt, await get(offset, count_size))
        if entries == 0 or entries > MAX_TAGS:
            raise InvalidHeaderError(
                f"{url}: IFD {len(seen) - 1} at byte {offset} claims {entries} tags; the file is "
                "corrupt"
            )
        table = await get(offset + count_size, entries * entry_size + offset_size)
        for i in range(entries):
            tag, kind = struct.unpack_from(order + "HH", table, i * entry_size)
            (values,) = struct.unpack_from(order + offset_fmt, table, i * entry_size + 4)
            size = _TYPE_SIZES.get(kind, 1) * values
            if tag in ENUMERATED and kind == 3 and values == 1:
                name, allowed = ENUMERATED[tag]
                (value,) = struct.unpack_from(order + "H", table, i * entry_size + 4 + offset_size)
                if value not in allowed:
                    raise InvalidHeaderError(
                        f"{url}: IFD {len(seen) - 1}: {name} {value} is not one of "
                        f"{sorted(allowed)}; the file is corrupt"
                    )
            if size > MAX_TAG_BYTES:
                raise InvalidHeaderError(
                    f"{url}: tag {tag} of IFD {len(seen) - 1} claims {values} values "
                    f"({size} bytes); the file is corrupt"
                )
        (offset,) = struct.unpack_from(order + offset_fmt, table, entries * entry_size)
    return len(seen)
