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
from dataclasses import dataclass, field

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


GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737, 42113)
"""ModelPixelScale, ModelTiepoint, ModelTransformation, GeoKeyDirectory, GeoDoubleParams,
GeoAsciiParams and GDAL_NODATA: the tags GDAL builds a file's CRS, transform and nodata from."""
SAMPLE_TAGS = (258, 277, 339)
"""BitsPerSample, SamplesPerPixel, SampleFormat: the band type GDAL parses nodata against."""
_KEPT = frozenset(GEO_TAGS + SAMPLE_TAGS)
_EVERY_IFD = frozenset({254, 256, 257, 259, 262, 277, 278, 284, 317, 322, 323})
"""NewSubfileType, sizes, Compression, Photometric, SamplesPerPixel, RowsPerStrip,
PlanarConfiguration, Predictor, tile sizes."""
_FIRST_IFD = _KEPT | {330}
"""The first IFD's georeferencing and sample tags, and its SubIFDs."""
_INTS = {1: "B", 3: "H", 4: "I", 16: "Q", 6: "b", 8: "h", 9: "i", 17: "q", 13: "I", 18: "Q"}


@dataclass(frozen=True)
class RawTag:
    """A tag's type code, value count and value bytes (in the file's byte order)."""

    kind: int
    count: int
    data: bytes


@dataclass(frozen=True)
class RawIFD:
    """What the walk learnt of one IFD: enough to tell overviews, masks and pages apart."""

    offset: int
    subfile_type: int
    """NewSubfileType: bit 0 reduced resolution (an overview), bit 1 a page, bit 2 a mask."""
    width: int
    height: int
    samples: int
    photometric: int | None
    block: tuple[int, int] = (0, 0)
    """(rows, cols) of a tile, or (rows per strip, width) of a striped IFD."""
    tiled: bool = False
    compression: int = 1
    predictor: int = 1
    planar: int = 1
    in_sub_ifds: bool = False
    """Reached through the first IFD's SubIFDs tag (not the main chain)."""

    @property
    def reduced(self) -> bool:
        return bool(self.subfile_type & 1)

    # the tag names async-tiff's IFDs answer to, for levels read through GDAL only
    @property
    def image_width(self) -> int:
        return self.width

    @property
    def image_height(self) -> int:
        return self.height

    @property
    def tile_width(self) -> int | None:
        return self.block[1] if self.tiled else None

    @property
    def tile_height(self) -> int | None:
        return self.block[0] if self.tiled else None

    @property
    def tile_offsets(self) -> list[int] | None:
        """Not kept by the walk: empty for tiled IFDs (GDAL reads them), None for strips."""
        return [] if self.tiled else None

    @property
    def tile_byte_counts(self) -> list[int] | None:
        return self.tile_offsets

    @property
    def rows_per_strip(self) -> int | None:
        return None if self.tiled else self.block[0]

    @property
    def samples_per_pixel(self) -> int:
        return self.samples

    @property
    def planar_configuration(self) -> int:
        return self.planar

    @property
    def photometric_interpretation(self) -> int | None:
        return self.photometric

    @property
    def mask(self) -> bool:
        return bool(self.subfile_type & 4) or self.photometric == 4


@dataclass
class HeaderWalk:
    """The IFDs of a TIFF in file order (SubIFDs of the first IFD after the chain), and the
    first IFD's georeferencing and sample tags, raw."""

    order: str
    ifds: list[RawIFD] = field(default_factory=list)
    tags: dict[int, RawTag] = field(default_factory=dict)

    def ints(self, tag: int) -> list[int]:
        raw = self.tags.get(tag)
        if raw is None or raw.kind not in _INTS:
            return []
        return list(struct.unpack(self.order + _INTS[raw.kind] * raw.count, raw.data))


async def check_ifd_chain(read: ReadRange, head: bytes, url: str) -> int:
    """Walk the chain from `head` (the object's first bytes); return the number of IFDs."""
    walk = await walk_header(read, head, url)
    return 0 if walk is None else len([i for i in walk.ifds if not i.in_sub_ifds])


async def walk_header(read: ReadRange, head: bytes, url: str) -> HeaderWalk | None:
    """Walk the chain from `head` (the object's first bytes), checking it as it goes.

    Bytes past `head` are fetched with `read`. Returns None for files that are not
    TIFFs: they are left to async-tiff, which names the problem itself.
    """
    if len(head) < 8 or head[:2] not in (b"II", b"MM"):
        return None
    order = "<" if head[:2] == b"II" else ">"
    (version,) = struct.unpack_from(order + "H", head, 2)
    if version == 42:
        count_fmt, entry_size, offset_fmt = "H", 12, "I"
        (offset,) = struct.unpack_from(order + "I", head, 4)
    elif version == 43 and len(head) >= 16:
        count_fmt, entry_size, offset_fmt = "Q", 20, "Q"
        (offset,) = struct.unpack_from(order + "Q", head, 8)
    else:
        return None
    count_size = struct.calcsize(count_fmt)
    offset_size = struct.calcsize(offset_fmt)
    chunks: dict[int, bytes] = {0: head}
    walk = HeaderWalk(order)

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
    sub_ifds: list[int] = []

    async def walk_chain(offset: int, in_sub_ifds: bool) -> None:
        while offset:
            if offset in seen:
                raise InvalidHeaderError(
                    f"{url}: the IFD chain loops (IFD {len(seen) - 1} points back to byte "
                    f"{offset}); the file is corrupt"
                )
            if len(seen) >= MAX_IFDS:
                raise InvalidHeaderError(f"{url}: more than {MAX_IFDS} IFDs; refused as corrupt")
            seen.add(offset)
            (entries,) = struct.unpack(order + count_fmt, await get(offset, count_size))
            if entries == 0 or entries > MAX_TAGS:
                raise InvalidHeaderError(
                    f"{url}: IFD {len(seen) - 1} at byte {offset} claims {entries} tags; the "
                    "file is corrupt"
                )
            table = await get(offset + count_size, entries * entry_size + offset_size)
            first = not walk.ifds
            values: dict[int, int] = {}
            for i in range(entries):
                at = i * entry_size
                tag, kind = struct.unpack_from(order + "HH", table, at)
                (count,) = struct.unpack_from(order + offset_fmt, table, at + 4)
                size = _TYPE_SIZES.get(kind, 1) * count
                if size > MAX_TAG_BYTES:
                    raise InvalidHeaderError(
                        f"{url}: tag {tag} of IFD {len(seen) - 1} claims {count} values "
                        f"({size} bytes); the file is corrupt"
                    )
                if tag in ENUMERATED and kind == 3 and count == 1:
                    name, allowed = ENUMERATED[tag]
                    (value,) = struct.unpack_from(order + "H", table, at + 4 + offset_size)
                    if value not in allowed:
                        raise InvalidHeaderError(
                            f"{url}: IFD {len(seen) - 1}: {name} {value} is not one of "
                            f"{sorted(allowed)}; the file is corrupt"
                        )
                wanted = tag in _EVERY_IFD or (first and tag in _FIRST_IFD)
                if not wanted or kind not in _TYPE_SIZES:
                    continue
                if size <= offset_size:
                    data = table[at + 4 + offset_size : at + 4 + offset_size + size]
                else:
                    (where,) = struct.unpack_from(order + offset_fmt, table, at + 4 + offset_size)
                    data = await get(where, size)
                if first and tag in _KEPT:
                    walk.tags[tag] = RawTag(kind, count, data)
                if kind in _INTS and count >= 1:
                    ints = struct.unpack(order + _INTS[kind] * count, data)
                    if tag == 330:
                        sub_ifds.extend(int(v) for v in ints[:MAX_IFDS])
                    else:
                        values[tag] = int(ints[0])
            walk.ifds.append(
                RawIFD(
                    offset=offset,
                    subfile_type=values.get(254, 0),
                    width=values.get(256, 0),
                    height=values.get(257, 0),
                    samples=values.get(277, 1),
                    photometric=values.get(262),
                    block=(
                        (values.get(323, 0), values.get(322, 0))
                        if 322 in values
                        else (
                            min(values.get(278, 2**32 - 1), values.get(257, 0)),
                            values.get(256, 0),
                        )
                    ),
                    tiled=322 in values,
                    compression=values.get(259, 1),
                    predictor=values.get(317, 1),
                    planar=values.get(284, 1),
                    in_sub_ifds=in_sub_ifds,
                )
            )
            (offset,) = struct.unpack_from(order + offset_fmt, table, entries * entry_size)

    await walk_chain(offset, False)
    for sub in sub_ifds:
        if sub not in seen:
            await walk_chain(sub, True)
    return walk
