"""An upright JPEG's pixels without anything else it carries, copied rather than re-encoded.

Most photos arrive from the reporter's page already upright and downscaled by the phone.
Decoding and re-encoding such a JPEG only to drop its metadata costs ingest most of its
time and the photo a second generation of compression loss. Copying the segments that
draw the pixels (quantisation and Huffman tables, frame and scan headers, the scans
themselves) and dropping everything else (every APPn segment, so EXIF with its GPS, XMP,
ICC profiles and embedded thumbnails; comments; whatever follows the end of the image,
such as an MPO's other frames or an appended archive) stores the same pixels bit for bit.

Only files this walk fully understands are copied: Huffman-coded baseline, extended or
progressive frames of one (grey) or three (YCbCr) components, no Adobe colour transform,
and no more segments than a camera or a browser writes. Anything else, or any structure
out of order, is left to the re-encoding path.

What a copy cannot drop is what a crafted file hides inside its compressed data: padding
at the end of a scan, tables no component uses. No viewer shows those bytes; the caller
checks the copy for active content as it checks the upload.
"""

from __future__ import annotations

import re

_SOI = b"\xff\xd8"
_EOI = 0xD9
_SOS = 0xDA
# A plain JFIF 1.01 header, no thumbnail: it tells every decoder three components are
# YCbCr, which the frames this module copies are.
_JFIF = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
# Frames whose pixels every browser draws: baseline, extended and progressive Huffman.
_FRAMES = frozenset({0xC0, 0xC1, 0xC2})
# Tables and headers a frame's scans need.
_TABLES = frozenset({0xC4, 0xDB, 0xDD})  # Huffman, quantisation, restart interval
_APP_ADOBE = 0xEE
_COMMENT = 0xFE
_RGB_COMPONENT_IDS = (ord("R"), ord("G"), ord("B"))
# Inside a scan, 0xFF is followed by 0x00 (stuffing), 0xD0-0xD7 (a restart) or 0xFF (a fill
# byte): anything else is the marker that ends the scan.
_SCAN_ENDING_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# A progressive photo has about a dozen scans and as many tables; a file with far more is
# made to be slow or to carry something, and is decoded and re-encoded instead.
MAX_SEGMENTS = 128


def pixels_only(data: bytes) -> bytes | None:
    """The JPEG in `data` as a plain JFIF file of its pixel data alone, or None when its
    structure is not one this copies (the caller then decodes and re-encodes it)."""
    if not data.startswith(_SOI):
        return None
    kept = [_SOI, _JFIF]
    position, end = len(_SOI), len(data)
    framed = False
    for _ in range(MAX_SEGMENTS):
        position, marker = _next_marker(data, position)
        if marker is None:
            return None
        if marker == _EOI:
            if not framed:
                return None
            kept.append(b"\xff\xd9")
            return b"".join(kept)
        if position + 2 > end:
            return None
        length = int.from_bytes(data[position : position + 2], "big")
        segment_end = position + length
        if length < 2 or segment_end > end:
            return None
        segment = data[position - 2 : segment_end]
        if 0xE0 <= marker <= 0xEF:
            if marker == _APP_ADOBE:
                return None  # its colour transform would be lost with it
        elif marker == _COMMENT:
            pass
        elif marker in _FRAMES:
            if framed or not _copyable_frame(data[position + 2 : segment_end]):
                return None
            framed = True
            kept.append(segment)
        elif marker in _TABLES:
            kept.append(segment)
        elif marker == _SOS:
            if not framed:
                return None
            scan_end = _scan_end(data, segment_end)
            if scan_end is None:
                return None
            kept.append(data[position - 2 : scan_end])
            segment_end = scan_end
        else:
            return None  # arithmetic coding, hierarchical frames, extensions: re-encode
        position = segment_end
    return None


def _next_marker(data: bytes, position: int) -> tuple[int, int | None]:
    """The marker at `position` (fill bytes skipped) and where its segment begins."""
    end = len(data)
    if position >= end or data[position] != 0xFF:
        return position, None
    while position < end and data[position] == 0xFF:
        position += 1
    if position >= end:
        return position, None
    marker = data[position]
    if marker == 0x00 or 0xD0 <= marker <= 0xD8 or marker == 0x01:
        return position, None  # stuffing, a restart or a second start outside a scan
    return position + 1, marker


def _copyable_frame(header: bytes) -> bool:
    # precision (1), height (2), width (2), component count (1), then 3 bytes a component
    if len(header) < 6:
        return False
    count = header[5]
    if count not in (1, 3) or len(header) != 6 + 3 * count:
        return False
    ids = tuple(header[6 + 3 * i] for i in range(count))
    return ids != _RGB_COMPONENT_IDS  # such ids without JFIF mean RGB, not YCbCr


def _scan_end(data: bytes, position: int) -> int | None:
    """Where the entropy-coded data starting at `position` ends: at the next marker that
    is neither stuffing (0xFF00) nor a restart (0xFFD0-D7). None if the file ends first."""
    found = _SCAN_ENDING_MARKER.search(data, position)
    return None if found is None else found.start()
