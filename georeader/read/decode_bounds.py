"""What a compressed tile claims to hold, read from its codec header before decoding.

Decoders allocate what the stream declares. A JPEG whose SOF marker says 60000 x
60000, or a LERC blob that says the same, made async-tiff's Rust decoder abort
the process (`memory allocation of 3600000000 bytes failed`) and imagecodecs
allocate 10 GiB. Every decode is bounded by the tile's expected size: byte
codecs decode into an `out` buffer of exactly that size (imagecodecs stops with
an error when it is full), and for JPEG and LERC the declared dimensions are
checked here first. Anything else is a `TileDecodeError`.
"""

from __future__ import annotations

import struct

from georeader.errors import TileDecodeError

_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def jpeg_dims(data: bytes) -> tuple[int, int, int]:
    """(rows, cols, components) from a JPEG stream's SOF marker."""
    i = 2 if data[:2] == b"\xff\xd8" else -1
    while 0 <= i < len(data) - 9:
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SOF:
            rows, cols = struct.unpack_from(">HH", data, i + 5)
            return rows, cols, data[i + 9]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack_from(">H", data, i + 2)
        i += 2 + length
    raise TileDecodeError("JPEG tile has no frame header (SOF marker)")


def check_jpeg(data: bytes, rows: int, cols: int) -> None:
    got_rows, got_cols, _ = jpeg_dims(data)
    if (got_rows, got_cols) != (rows, cols):
        raise TileDecodeError(
            f"JPEG tile declares {got_rows} x {got_cols} pixels, the tile is {rows} x {cols}"
        )


def check_lerc(data: bytes, rows: int, cols: int, samples: int) -> None:
    """LERC2 header: "Lerc2 ", version, [checksum (v3+)], nRows, nCols, [nDim (v4+)]."""
    if data[:6] != b"Lerc2 " or len(data) < 30:
        raise TileDecodeError("LERC tile is not a LERC2 blob")
    (version,) = struct.unpack_from("<i", data, 6)
    at = 14 if version >= 3 else 10
    got_rows, got_cols = struct.unpack_from("<ii", data, at)
    ndim = struct.unpack_from("<i", data, at + 8)[0] if version >= 4 else 1
    if (got_rows, got_cols) != (rows, cols) or not 1 <= ndim <= samples:
        raise TileDecodeError(
            f"LERC tile declares {got_rows} x {got_cols} x {ndim}, the tile is "
            f"{rows} x {cols} x {samples}"
        )


def max_stream_bytes(raw_bytes: int) -> int:
    """An upper bound on a tile's encoded size (LERC blobs inside deflate/zstd, byte counts).

    No codec expands data much (deflate and zstd by well under 1 %, LZW by at most
    50 %, LERC by its mask and headers, JPEG tables a few hundred bytes): twice the
    raw size plus 64 KiB is generous, and a stream that inflates 1000:1 beyond it
    is refused at open (GDAL decoded such strips into thread-dependent garbage).
    """
    return 2 * raw_bytes + 2**16
