"""Byte-level reading and patching of TIFF headers, to build hostile files from good ones.

Only what the hostile-file tests need: the IFD chain (classic and BigTIFF), each
entry's type, count and where its value lives, and writes of new values in place.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

TYPE_FORMATS = {1: "B", 2: "c", 3: "H", 4: "I", 5: "II", 6: "b", 7: "B", 8: "h", 9: "i", 10: "ii",
                11: "f", 12: "d", 16: "Q", 17: "q", 18: "Q"}
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8,
              17: 8, 18: 8}


@dataclass
class Entry:
    tag: int
    kind: int
    count: int
    pos: int
    """Byte offset of this entry in the file."""
    value_pos: int
    """Where the values are (inline in the entry, or the offset they point to)."""


@dataclass
class Ifd:
    offset: int
    entries: dict[int, Entry]
    next_pos: int
    """Byte offset of the next-IFD pointer."""
    end: int


class Tiff:
    """A mutable TIFF image in memory."""

    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)
        self.order = "<" if data[:2] == b"II" else ">"
        self.big = struct.unpack_from(self.order + "H", data, 2)[0] == 43
        self.ifds = self._walk()

    @property
    def _off(self) -> str:
        return "Q" if self.big else "I"

    def _walk(self) -> list[Ifd]:
        o = self.order
        offset = struct.unpack_from(o + self._off, self.data, 8 if self.big else 4)[0]
        ifds, seen = [], set()
        while offset and offset not in seen and offset < len(self.data):
            seen.add(offset)
            n = struct.unpack_from(o + ("Q" if self.big else "H"), self.data, offset)[0]
            start = offset + (8 if self.big else 2)
            size = 20 if self.big else 12
            entries = {}
            for i in range(n):
                p = start + i * size
                if self.big:
                    tag, kind, count = struct.unpack_from(o + "HHQ", self.data, p)
                    inline, vp = 8, p + 12
                else:
                    tag, kind, count = struct.unpack_from(o + "HHI", self.data, p)
                    inline, vp = 4, p + 8
                nbytes = TYPE_SIZES.get(kind, 1) * count
                if nbytes > inline:
                    vp = struct.unpack_from(o + self._off, self.data, vp)[0]
                entries[tag] = Entry(tag, kind, count, p, vp)
            next_pos = start + n * size
            ifds.append(Ifd(offset, entries, next_pos, next_pos + (8 if self.big else 4)))
            offset = struct.unpack_from(o + self._off, self.data, next_pos)[0]
        return ifds

    def values(self, ifd: int, tag: int) -> list:
        e = self.ifds[ifd].entries[tag]
        fmt = TYPE_FORMATS[e.kind]
        return list(struct.unpack_from(self.order + fmt * e.count, self.data, e.value_pos))

    def set_values(self, ifd: int, tag: int, values: list) -> None:
        """Overwrite a tag's values in place (same count or fewer)."""
        e = self.ifds[ifd].entries[tag]
        struct.pack_into(
            self.order + TYPE_FORMATS[e.kind] * len(values), self.data, e.value_pos, *values
        )

    def set_entry(self, ifd: int, tag: int, *, kind: int | None = None, count: int | None = None,
                  raw: int | None = None) -> None:
        """Rewrite an entry's type, count or raw value/offset field (for garbage tags)."""
        e = self.ifds[ifd].entries[tag]
        head, value, value_at = ("HHQ", "Q", 12) if self.big else ("HHI", "I", 8)
        count = e.count if count is None else count
        struct.pack_into(self.order + head, self.data, e.pos, tag, kind or e.kind, count)
        if raw is not None:
            struct.pack_into(self.order + value, self.data, e.pos + value_at, raw)

    def set_next(self, ifd: int, target: int) -> None:
        struct.pack_into(self.order + self._off, self.data, self.ifds[ifd].next_pos, target)

    def append(self, blob: bytes) -> int:
        """Append bytes at the end (word-aligned); return their offset."""
        if len(self.data) % 2:
            self.data.append(0)
        at = len(self.data)
        self.data += blob
        return at

    def replace_tile(self, ifd: int, index: int, blob: bytes) -> None:
        """Point tile (or strip) `index` of an IFD at new bytes appended to the file."""
        entries = self.ifds[ifd].entries
        offsets_tag, counts_tag = (324, 325) if 324 in entries else (273, 279)
        at = self.append(blob)
        offsets, counts = self.values(ifd, offsets_tag), self.values(ifd, counts_tag)
        offsets[index], counts[index] = at, len(blob)
        for tag, values in ((offsets_tag, offsets), (counts_tag, counts)):
            if self.ifds[ifd].entries[tag].kind == 3 and max(values) > 0xFFFF:
                self._widen(ifd, tag, values)
            else:
                self.set_values(ifd, tag, values)

    def _widen(self, ifd: int, tag: int, values: list) -> None:
        """Rewrite a SHORT array as LONG (appended, or inline when it fits)."""
        e = self.ifds[ifd].entries[tag]
        packed = struct.pack(self.order + "I" * len(values), *values)
        inline = 8 if self.big else 4
        if len(packed) <= inline:
            self.set_entry(ifd, tag, kind=4, raw=values[0])
            e.value_pos = e.pos + (12 if self.big else 8)
        else:
            at = self.append(packed)
            self.set_entry(ifd, tag, kind=4, raw=at)
            e.value_pos = at
        e.kind = 4

    def boundaries(self) -> list[int]:
        """Structural byte offsets: header, each IFD and its table end, tag data, tiles."""
        points = {4, 8, 16 if self.big else 8}
        for ifd in self.ifds:
            points |= {ifd.offset, ifd.offset + 2, ifd.next_pos, ifd.end}
            for e in ifd.entries.values():
                points |= {e.value_pos, e.value_pos + TYPE_SIZES.get(e.kind, 1) * e.count}
            for off_tag, cnt_tag in ((324, 325), (273, 279)):
                if off_tag in ifd.entries:
                    for off, cnt in zip(
                        self.values(len(self.ifds) and self.ifds.index(ifd), off_tag),
                        self.values(self.ifds.index(ifd), cnt_tag),
                        strict=True,
                    ):
                        if cnt:
                            points |= {off, off + cnt // 2, off + cnt}
        return sorted(p for p in points if 0 < p < len(self.data))

    def bytes(self) -> bytes:
        return bytes(self.data)
