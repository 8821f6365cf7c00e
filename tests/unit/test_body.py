"""Reading request bodies within limits and undoing Content-Encoding with a cap (gzip bombs,
truncated and multi-member gzip)."""

from __future__ import annotations

import asyncio
import gzip
import os
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pharos.server.ingest import body as body_module
from pharos.server.ingest.body import (
    BadEncoding,
    BodyTooLarge,
    UnsupportedEncoding,
    decode_content,
    gunzip_capped,
    read_limited,
)

MiB = 1 << 20


class Chunks:
    """An async body stream that records how far it was read."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = list(chunks)
        self.consumed = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.consumed += 1
            yield chunk


def read(chunks: Chunks, declared: str | None, limit: int) -> bytes:
    return asyncio.run(read_limited(chunks.__aiter__(), declared, limit))


# --- read_limited --------------------------------------------------------------------------------


def test_read_limited_joins_the_chunks() -> None:
    chunks = Chunks([b"ab", b"", b"cd", b"e"])
    assert read(chunks, "5", 5) == b"abcde"
    assert chunks.consumed == 4


def test_read_limited_without_content_length_reads_a_chunked_body() -> None:
    assert read(Chunks([b"x" * 10] * 3), None, 30) == b"x" * 30
    assert read(Chunks([]), None, 0) == b""


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    chunks = Chunks([b"x" * 10])
    with pytest.raises(BodyTooLarge, match="11 bytes"):
        read(chunks, "11", 10)
    assert chunks.consumed == 0


def test_a_chunked_body_over_the_limit_stops_at_the_chunk_that_crosses_it() -> None:
    chunks = Chunks([b"x" * 4, b"x" * 4, b"x" * 4, b"x" * 4])
    with pytest.raises(BodyTooLarge, match="limit of 10 bytes"):
        read(chunks, None, 10)
    assert chunks.consumed == 3  # the fourth chunk was never pulled


def test_a_body_longer_than_its_declared_length_is_still_capped() -> None:
    chunks = Chunks([b"x" * 8, b"x" * 8, b"x" * 8])
    with pytest.raises(BodyTooLarge):
        read(chunks, "4", 10)  # a lying Content-Length does not lift the limit
    assert chunks.consumed == 2


@pytest.mark.parametrize("declared", ["abc", "", "1.5", "0x10"])
def test_an_invalid_content_length_is_a_bad_encoding(declared: str) -> None:
    chunks = Chunks([b"x"])
    with pytest.raises(BadEncoding, match="Content-Length"):
        read(chunks, declared, 10)
    assert chunks.consumed == 0


def test_exactly_the_limit_is_accepted() -> None:
    assert read(Chunks([b"x" * 10]), "10", 10) == b"x" * 10


# --- decode_content ------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", [None, "", "identity", "IDENTITY", " identity "])
def test_identity_or_no_encoding_returns_the_body_as_is(encoding: str | None) -> None:
    body = b"\x1f\x8b not really gzip"
    assert decode_content(body, encoding, 1) is body  # no copy, and no cap: it was read capped


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", " gzip", "x-gzip"])
def test_gzip_encoding_is_undone(encoding: str) -> None:
    assert decode_content(gzip.compress(b"payload"), encoding, 100) == b"payload"


@pytest.mark.parametrize("encoding", ["br", "deflate", "zstd", "gzip, br", "compress", "gzip;q=1"])
def test_other_encodings_are_unsupported(encoding: str) -> None:
    with pytest.raises(UnsupportedEncoding, match="Content-Encoding") as raised:
        decode_content(gzip.compress(b"x"), encoding, 100)
    assert isinstance(raised.value, BadEncoding)  # handlers may catch the base class


def test_decode_content_caps_gzip() -> None:
    with pytest.raises(BodyTooLarge):
        decode_content(gzip.compress(b"x" * 101), "gzip", 100)


# --- gunzip_capped -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 1000, MiB - 1, MiB, MiB + 1, 3 * MiB + 5])
def test_gunzip_round_trip(size: int) -> None:
    data = os.urandom(size // 2) + b"a" * (size - size // 2)
    assert gunzip_capped(gzip.compress(data), size) == data


def test_the_limit_is_inclusive() -> None:
    data = b"z" * 5000
    assert gunzip_capped(gzip.compress(data), 5000) == data
    with pytest.raises(BodyTooLarge, match="limit of 4999 bytes"):
        gunzip_capped(gzip.compress(data), 4999)


def test_multi_member_gzip_is_concatenated() -> None:
    members = [b"first ", b"", b"second " * 1000, os.urandom(3000)]
    body = b"".join(gzip.compress(m) for m in members)
    assert gunzip_capped(body, 10 * MiB) == b"".join(members)


def test_the_limit_counts_every_member() -> None:
    body = gzip.compress(b"a" * 600) + gzip.compress(b"b" * 600)
    with pytest.raises(BodyTooLarge):
        gunzip_capped(body, 1000)


def test_trailing_zero_padding_is_allowed() -> None:
    assert gunzip_capped(gzip.compress(b"data") + bytes(100), 100) == b"data"
    # an empty member ends with eight zero bytes (CRC and size): not to be taken for padding
    body = gzip.compress(b"") + gzip.compress(b"after") + bytes(3)
    assert gunzip_capped(body, 100) == b"after"


def test_many_tiny_members_are_decoded() -> None:
    # 100,000 empty members (2 MB): each member's leftover input must not be the whole rest
    # of the body, or this takes quadratic time (minutes for a 16 MiB body).
    body = gzip.compress(b"") * 50_000 + gzip.compress(b"end") + gzip.compress(b"") * 50_000
    assert gunzip_capped(body, 10) == b"end"


def test_work_grows_linearly_with_the_number_of_members(monkeypatch: pytest.MonkeyPatch) -> None:
    # Count the compressed bytes handed to the inflaters (the copying the input costs) for
    # n and 2n tiny members: twice the members may cost twice the work, not four times.
    fed: list[int] = []
    real = zlib.decompressobj

    class Counting:
        def __init__(self, *args: int) -> None:
            self.inner = real(*args)

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            fed.append(len(data))
            return self.inner.decompress(data, max_length)

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    monkeypatch.setattr(body_module.zlib, "decompressobj", Counting)
    work = []
    for members in (2000, 4000):
        fed.clear()
        assert gunzip_capped(gzip.compress(b"") * members + gzip.compress(b"end"), 10) == b"end"
        work.append(sum(fed))
    assert work[1] < 3 * work[0]


def test_truncated_gzip_is_a_bad_encoding() -> None:
    body = gzip.compress(os.urandom(5000))
    for cut in (1, 5, 10, 11, 100, len(body) // 2, len(body) - 8, len(body) - 1):
        with pytest.raises(BadEncoding):
            gunzip_capped(body[:cut], MiB)


def test_a_truncated_second_member_is_a_bad_encoding() -> None:
    second = gzip.compress(b"second member")
    with pytest.raises(BadEncoding):
        gunzip_capped(gzip.compress(b"first") + second[:-3], MiB)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not gzip at all",
        b"\x1f\x8b",  # just the magic
        bytes(10),
        zlib.compress(b"zlib, not gzip"),
        gzip.compress(b"ok", mtime=0) + b"trailing garbage",
    ],
)
def test_not_gzip_is_a_bad_encoding(body: bytes) -> None:
    with pytest.raises(BadEncoding, match="invalid gzip body"):
        gunzip_capped(body, MiB)


def test_a_corrupt_crc_is_a_bad_encoding() -> None:
    body = bytearray(gzip.compress(b"checked data"))
    body[-8] ^= 0xFF  # the CRC32 of the trailer
    with pytest.raises(BadEncoding):
        gunzip_capped(bytes(body), MiB)


def _bomb(zeros: int) -> bytes:
    """``zeros`` bytes of zeros, gzip-compressed without ever holding them in memory."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MiB)
    parts = [compressor.compress(block) for _ in range(zeros // MiB)]
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return _bomb(200 * MiB)


def test_a_gzip_bomb_is_refused_with_bounded_memory(bomb: bytes) -> None:
    assert len(bomb) < MiB  # ~200 KiB that would inflate to 200 MiB
    limit = 8 * MiB
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge, match="decompressed body is over the limit"):
            gunzip_capped(bomb, limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit + 4 * MiB


def test_a_bomb_inside_a_later_member_is_refused(bomb: bytes) -> None:
    with pytest.raises(BodyTooLarge):
        gunzip_capped(gzip.compress(b"innocent") * 3 + bomb, 4 * MiB)


def test_a_bomb_within_the_limit_decodes() -> None:
    small = _bomb(3 * MiB)
    assert gunzip_capped(small, 3 * MiB) == bytes(3 * MiB)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 400))
def test_gunzip_of_arbitrary_bytes_raises_only_its_own_errors(data: bytes, limit: int) -> None:
    try:
        out = gunzip_capped(data, limit)
    except (BadEncoding, BodyTooLarge):
        return
    assert len(out) <= limit


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.binary(max_size=300), min_size=1, max_size=4),
    st.integers(0, 2),
    st.integers(0, 1500),
)
def test_gunzip_matches_the_standard_library(members: list[bytes], pad: int, limit: int) -> None:
    body = b"".join(gzip.compress(m, mtime=0) for m in members) + bytes(pad)
    expected = b"".join(members)
    if len(expected) <= limit:
        assert gunzip_capped(body, limit) == expected == gzip.decompress(body)
    else:
        with pytest.raises(BodyTooLarge):
            gunzip_capped(body, limit)
