"""Error fingerprints (pure): exception type + a normalised message.

Two occurrences belong to one error group when their exception types match and their messages
are equal once the parts that vary between occurrences are replaced by placeholders: quoted
values, URLs, e-mail addresses, UUIDs, IP addresses, file paths, hex ids and addresses, words
with digits in them (``user42``, ``req_8f3k2``) and numbers with whatever is glued to them
(``30s``, ``2.5GB``, ``2026-11-22T10:00:00Z``). Only the first line counts (a dump or a stack
after it does not), and at most :data:`MAX_MESSAGE_CHARS` of it. The fingerprint is 16 hex
characters of a BLAKE2b hash of the type and the normalised message.
"""

from __future__ import annotations

import hashlib
import re

#: Placeholders, in the order they are applied (each one must not be undone by a later one).
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # 'quoted' and "quoted" values (user input, keys, names) and `backticks`. A quote must open
    # and close at a word boundary, so the apostrophes of "can't" and "user's" are not quotes.
    (
        re.compile(r"(?<!\w)'[^'\n]{0,200}'(?!\w)|(?<!\w)\"[^\"\n]{0,200}\"(?!\w)|`[^`\n]{0,200}`"),
        "<str>",
    ),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE), "<url>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<email>"),
    (
        re.compile(
            r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE
        ),
        "<uuid>",
    ),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<ip>"),
    # IPv6: eight groups, or fewer with a "::" (HH:MM:SS times have neither)
    (
        re.compile(
            r"(?<![\w:])(?:(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}"
            r"|[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*::(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?"
            r"|::[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)(?![\w:])",
            re.IGNORECASE,
        ),
        "<ip>",
    ),
    # POSIX and Windows paths with at least two parts
    (re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.@~+-]+){2,}[\\/]?"), "<path>"),
    # 0x-prefixed and long hex strings (ids, hashes, addresses); a hex run needs a digit
    (re.compile(r"\b0x[0-9a-f]+\b", re.IGNORECASE), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", re.IGNORECASE), "<hex>"),
    # ids with digits inside words (req_8f3k2, user42, conv-7Hq2)
    (re.compile(r"\b[A-Za-z]+[_-]?(?=[A-Za-z0-9]*\d)[A-Za-z0-9]*\d[A-Za-z0-9_]*\b"), "<id>"),
    # numbers and what is glued to them: 42, -3.5, 1e-9, 30s, 512MB, 10:04:05, 2026-11-22T10:00Z
    (re.compile(r"(?<!\w)[-+]?\d(?:[\w.,:+-]*\w)?"), "<n>"),
)
_SPACES = re.compile(r"\s+")
#: Only the start of a message defines its group (a stack or a dump after it does not).
MAX_MESSAGE_CHARS = 500


def normalize_message(message: str | None) -> str:
    """The message's first line with its varying parts replaced; whitespace collapsed."""
    if not message:
        return ""
    text = message.strip().split("\n", 1)[0][:MAX_MESSAGE_CHARS]
    for pattern, placeholder in _RULES:
        text = pattern.sub(placeholder, text)
    return _SPACES.sub(" ", text).strip()


def fingerprint(exc_type: str | None, message: str | None) -> str:
    """16 hex characters identifying the group of (type, normalised message)."""
    return fingerprint_normalized(exc_type, normalize_message(message))


def fingerprint_normalized(exc_type: str | None, normalized: str) -> str:
    """:func:`fingerprint` of a message already normalised."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update((exc_type or "").strip().encode("utf-8", "surrogatepass"))
    digest.update(b"\x00")
    digest.update(normalized.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()
