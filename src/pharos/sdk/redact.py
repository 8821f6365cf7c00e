"""Redaction of secrets (and, when asked, personal data) before telemetry leaves the process
(pure: no I/O, no global state).

Two rules:

* **by key** — an attribute, log field or dict key named like a secret (``password``,
  ``api_key``, ``access_token``, ``authorization``, ``cookie``, ``client_secret``, …) has its
  whole value replaced, whatever its type. Keys are split into words (``apiKey``,
  ``x-api-key`` and ``API_KEY`` all read ``api key``), so ``max_tokens`` or
  ``llm.token_count.prompt`` are *not* secrets while ``csrf_token`` is.
* **by value** — inside any string, what looks like a secret is replaced where it stands:
  bearer tokens, ``sk-…`` keys, Stripe/GitHub/Slack/Google keys, AWS access key ids, JWTs,
  private-key blocks, ``password=…``-style pairs, the password of ``scheme://user:pass@host``;
  with ``pii=True`` also e-mail addresses and card numbers (Luhn-checked, so a timestamp is not a
  card).

Keys matching an allow-list pattern (``fnmatch``, case-insensitive) are left untouched.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"
_SAME = object()  # cache marker: the text needed no redaction

#: Words that make a key secret on their own.
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "authorization",
        "cookie",
        "cookies",
        "credential",
        "credentials",
        "jwt",
        "apikey",
        "privatekey",
        "secretkey",
        "accesskey",
        "sessionkey",
        "signingkey",
        "otp",
    }
)
#: Pairs of adjacent words that make a key secret (``api_key``, ``private-key``).
SECRET_PAIRS = frozenset(
    {("api", "key"), ("private", "key"), ("secret", "key"), ("access", "key"), ("signing", "key")}
)
#: ``token`` followed by one of these words is a count, not a credential (``token_count``).
NOT_SECRET_AFTER_TOKEN = frozenset(
    {"count", "counts", "usage", "limit", "limits", "type", "budget"}
)
#: Keys never redacted by default: token *counts* and usage numbers Pharos needs.
DEFAULT_ALLOW = ("gen_ai.usage.*", "llm.token_count.*")

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[a-z0-9]+")

_VALUE_PATTERNS = r"""
 (?P<private>-----BEGIN[A-Z ]*PRIVATE\ KEY-----[\s\S]*?-----END[A-Z ]*PRIVATE\ KEY-----)
|(?P<url>(?<=://)[^/\s:@'"]+:[^/\s@'"]+(?=@))
|(?P<bearer>\b[Bb]earer\s+[A-Za-z0-9\-._~+/]{8,}=*)
|(?P<jwt>\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,})
|(?P<sk>\bsk-[A-Za-z0-9][A-Za-z0-9_\-]{15,})
|(?P<stripe>\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,})
|(?P<github>\bgh[pousr]_[A-Za-z0-9]{30,})
|(?P<slack>\bxox[abposr]-[A-Za-z0-9-]{10,})
|(?P<google>\bAIza[0-9A-Za-z_\-]{35})
|(?P<aws>\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b)
|(?P<kv>
   (?<![A-Za-z0-9])
   (?P<kv_key>[A-Za-z0-9_.-]*?
     (?i:passw(?:or)?d|pwd|passphrase|secret|api[_-]?key|private[_-]?key|authorization
       |token(?!s\b|s_|_?counts?|izer))
     [A-Za-z0-9_.-]*)
   (?P<kv_sep>["']?\s*[=:]\s*)
   (?!["']?\[REDACTED\])
   (?P<kv_val>(?:(?i:bearer|basic|digest|token)\s+)?(?:"[^"]*"|'[^']*'|[^\s,;&"'}\]]+))
 )
"""
_PII_PATTERNS = r"""
|(?P<email>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})
|(?P<card>(?<![\d.])\d(?:[ -]?\d){12,18}(?![\d.]))
"""


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def key_words(key: str) -> list[str]:
    """``"x-apiKey"`` -> ``["x", "api", "key"]``."""
    return _WORD.findall(_CAMEL.sub("_", key).lower())


class Redactor:
    """Replaces secrets with ``[REDACTED]``. Immutable after construction; thread-safe."""

    __slots__ = (
        "_allow",
        "_extra",
        "_key_cache",
        "_patterns",
        "_text_cache",
        "_value",
        "enabled",
        "pii",
    )

    def __init__(
        self,
        *,
        enabled: bool = True,
        pii: bool = False,
        keys: Iterable[str] = (),
        patterns: Iterable[str] = (),
        allow: Iterable[str] = (),
    ) -> None:
        self.enabled = enabled
        self.pii = pii
        self._extra = tuple(
            "".join(key_words(k)) for k in keys if "".join(key_words(k))
        )  # compared without separators
        self._allow = tuple(p.lower() for p in (*DEFAULT_ALLOW, *allow))
        self._value = re.compile(_VALUE_PATTERNS + (_PII_PATTERNS if pii else ""), re.VERBOSE)
        self._patterns = tuple(re.compile(p) for p in patterns)
        self._key_cache: dict[str, int] = {}  # 0 plain, 1 secret, 2 allowed
        #: Short strings seen before (span names, models, tool names repeat all the time).
        self._text_cache: dict[str, object] = {}

    # --- keys -----------------------------------------------------------------------------

    def _classify(self, key: str) -> int:
        cached = self._key_cache.get(key)
        if cached is not None:
            return cached
        lowered = key.lower()
        if any(fnmatch.fnmatchcase(lowered, p) for p in self._allow):
            verdict = 2
        else:
            verdict = 1 if self._secret_key(key) else 0
        if len(self._key_cache) > 4096:
            self._key_cache.clear()
        self._key_cache[key] = verdict
        return verdict

    def _secret_key(self, key: str) -> bool:
        words = key_words(key)
        for i, word in enumerate(words):
            if word in SECRET_WORDS:
                if (
                    word == "token"
                    and i + 1 < len(words)
                    and words[i + 1] in NOT_SECRET_AFTER_TOKEN
                ):
                    continue
                return True
            if i + 1 < len(words) and (word, words[i + 1]) in SECRET_PAIRS:
                return True
        if self._extra:
            joined = "".join(words)
            return any(extra in joined for extra in self._extra)
        return False

    def is_secret_key(self, key: str) -> bool:
        return self.enabled and self._classify(key) == 1

    # --- values ---------------------------------------------------------------------------

    def _replace(self, match: re.Match[str]) -> str:
        if match.group("kv") is not None:
            value = match.group("kv_val")
            if value in (REDACTED, f'"{REDACTED}"', f"'{REDACTED}'"):
                return match.group(0)
            quote = value[0] if value[0] in "\"'" else ""
            return f"{match.group('kv_key')}{match.group('kv_sep')}{quote}{REDACTED}{quote}"
        if self.pii and match.group("card") is not None:
            digits = re.sub(r"[ -]", "", match.group("card"))
            return REDACTED if _luhn(digits) else match.group(0)
        if match.group("url") is not None:
            user = match.group("url").split(":", 1)[0]
            return f"{user}:{REDACTED}"
        return REDACTED

    def redact_text(self, text: str) -> str:
        """``text`` with every secret-looking part replaced (the same object when none)."""
        if not self.enabled or len(text) < 6:
            return text
        short = len(text) <= 200
        if short:
            cached = self._text_cache.get(text)
            if cached is _SAME:
                return text
            if isinstance(cached, str):
                return cached
        out = self._value.sub(self._replace, text)
        for pattern in self._patterns:
            out = pattern.sub(REDACTED, out)
        if out == text:
            out = text
        if short:
            if len(self._text_cache) >= 8192:
                self._text_cache.clear()
            self._text_cache[text] = _SAME if out is text else out
        return out

    def redact_value(self, key: str, value: Any) -> Any:
        """The value to send for attribute ``key``: ``[REDACTED]`` for a secret key, strings
        scrubbed, sequences element by element; other values unchanged."""
        if not self.enabled:
            return value
        verdict = self._classify(key)
        if verdict == 2:
            return value
        if verdict == 1:
            return REDACTED
        return self._scrub(value)

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, tuple | list) and any(isinstance(v, str) for v in value):
            scrubbed = [self.redact_text(v) if isinstance(v, str) else v for v in value]
            if any(a is not b for a, b in zip(scrubbed, value, strict=True)):
                return type(value)(scrubbed) if isinstance(value, tuple) else scrubbed
        return value

    def redact_mapping(self, attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """A redacted copy of ``attributes``, or None when nothing needed redacting (so the
        caller can keep the original object)."""
        if not self.enabled or not attributes:
            return None
        changed: dict[str, Any] | None = None
        for key, value in attributes.items():
            new = self.redact_value(key, value)
            if new is not value and new != value:
                if changed is None:
                    changed = dict(attributes)
                changed[key] = new
        return changed

    def redact_structure(self, obj: Any, _depth: int = 0) -> Any:
        """Redacts nested dicts/lists (captured inputs and outputs, log fields) by key and by
        value. Returns new containers; leaves non-container values other than strings alone."""
        if not self.enabled:
            return obj
        if _depth > 20:
            return obj
        if isinstance(obj, Mapping):
            out: dict[Any, Any] = {}
            for k, v in obj.items():
                if isinstance(k, str):
                    verdict = self._classify(k)
                    if verdict == 1:
                        out[k] = REDACTED
                        continue
                    if verdict == 2:
                        out[k] = v
                        continue
                out[k] = self.redact_structure(v, _depth + 1)
            return out
        if isinstance(obj, list):
            return [self.redact_structure(v, _depth + 1) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self.redact_structure(v, _depth + 1) for v in obj)
        if isinstance(obj, str):
            return self.redact_text(obj)
        return obj
