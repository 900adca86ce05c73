"""A tiny but valid PNG for the screenshot endpoint, built with zlib (no imaging dependency)."""

from __future__ import annotations

import functools
import struct
import zlib

WIDTH, HEIGHT = 1024, 768


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


@functools.cache
def screenshot_png(width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """A desktop-blue RGB image with a lighter taskbar: a few kilobytes once compressed."""
    desktop = b"\x00" + b"\x1f\x4e\x79" * width
    taskbar = b"\x00" + b"\xd0\xd4\xd9" * width
    bar = max(1, height // 20)
    raw = desktop * (height - bar) + taskbar * bar
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )
