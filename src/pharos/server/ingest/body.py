"""Read a request body within limits and gunzip it with a cap (no gzip bomb gets through)."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

_STEP = 1 << 20  # decompress at most 1 MiB at a time so a bomb is caught early
_FIRST_FEED = 256  # compressed bytes first handed to a member's inflater


class BodyTooLarge(ValueError):
    """The body (as sent, or once decompressed) is over the configured limit."""


class BadEncoding(ValueError):
    """The Content-Encoding is unsupported or the compressed data is corrupt."""


class UnsupportedEncoding(BadEncoding):
    """A Content-Encoding we do not speak (answered with 415)."""


async def read_limited(
    chunks: AsyncIterator[bytes], declared_length: str | None, max_bytes: int
) -> bytes:
    """Collect a body, refusing (before reading it) one whose Content-Length is over the limit
    and stopping as soon as a chunked one goes over it."""
    if declared_length is not None:
        try:
            declared = int(declared_length)
        except ValueError:
            raise BadEncoding(f"invalid Content-Length {declared_length!r}") from None
        if declared > max_bytes:
            raise BodyTooLarge(f"body of {declared} bytes is over the limit of {max_bytes} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(f"body is over the limit of {max_bytes} bytes")
        parts.append(chunk)
    return b"".join(parts)


def decode_content(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding`` (identity or gzip), never producing more than ``max_bytes``."""
    name = (encoding or "identity").strip().lower()
    if name in ("", "identity"):
        return body
    if name not in ("gzip", "x-gzip"):
        raise UnsupportedEncoding(f"unsupported Content-Encoding {encoding!r}: use gzip or none")
    return gunzip_capped(body, max_bytes)


def gunzip_capped(data: bytes, max_bytes: int) -> bytes:
    """Decompress gzip (possibly several members) with memory bounded by ``max_bytes``.

    Input is handed to each member's inflater in chunks that start small and double (up to
    1 MiB): the bytes fed past a member's end are copied once more when it ends, so feeding
    the whole rest each time would make a body of many tiny members cost quadratic time.
    """
    view = memoryview(data)
    end = _end_of_members(data)
    out: list[bytes] = []
    produced = 0
    pos = 0  # data[:pos] has been handed to an inflater
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        feed = _FIRST_FEED
        while not inflater.eof:
            chunk: bytes | memoryview = inflater.unconsumed_tail
            if not chunk and pos < len(view):
                chunk = view[pos : pos + feed]
                pos += len(chunk)
                feed = min(feed * 2, _STEP)
            try:
                piece = inflater.decompress(chunk, min(_STEP, max_bytes - produced + 1))
            except zlib.error as exc:
                raise BadEncoding(f"invalid gzip body: {exc}") from None
            produced += len(piece)
            if produced > max_bytes:
                raise BodyTooLarge(f"decompressed body is over the limit of {max_bytes} bytes")
            if piece:
                out.append(piece)
            elif not chunk and not inflater.eof:
                raise BadEncoding("invalid gzip body: truncated stream")
        pos -= len(inflater.unused_data)  # fed past this member's end: the next one's start
        if pos >= end:  # nothing but zero padding is left
            return b"".join(out)


def _end_of_members(data: bytes) -> int:
    """The index just after the last non-zero byte (trailing NULs are padding, not a member)."""
    end = len(data)
    while end > 0:
        start = max(0, end - _STEP)
        block = data[start:end].rstrip(b"\x00")
        if block:
            return start + len(block)
        end = start
    return 0
