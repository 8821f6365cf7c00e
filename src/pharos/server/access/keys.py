"""API keys: ``phk_`` + 43 random URL-safe characters (256 bits), shown once.

Stored: the first 12 characters (``prefix``, unique, to find the row and to show in lists) and
HMAC-SHA256(install secret, key). A key carries 256 bits of entropy, so a slow password hash
(scrypt, argon2) would add nothing against guessing and cost every request milliseconds; one
keyed hash and a timing-safe compare verify a request in microseconds. The install secret is
created on first use and kept in the ``access_secrets`` table, so every instance sharing the
database verifies the same keys.

:class:`KeyStore` answers "who is this key?" for each request from a cache that lives at most
``ttl`` seconds (1 s by default): a revocation reaches every instance within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from pharos.server.db.engine import writing
from pharos.server.db.schema import access_secrets, api_keys

KEY_PREFIX = "phk_"
PREFIX_LEN = 12  # "phk_" + 8 characters shown in lists
SCOPES = ("ingest", "read", "admin")
SECRET_NAME = "api_key_hmac"  # noqa: S105 (a row name, not a secret)


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    scopes: frozenset[str]
    created_ns: int
    last_used_ns: int | None
    revoked_ns: int | None
    rpm: int | None = None  # own gateway limits; None = PHAROS_KEY_RPM / PHAROS_KEY_TPM
    tpm: int | None = None

    def allows(self, scope: str) -> bool:
        """``admin`` may do everything; otherwise the key needs the scope itself."""
        return "admin" in self.scopes or scope in self.scopes

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": sorted(self.scopes),
            "created_ns": self.created_ns,
            "last_used_ns": self.last_used_ns,
            "revoked": self.revoked_ns is not None,
            "revoked_ns": self.revoked_ns,
            "rpm": self.rpm,
            "tpm": self.tpm,
        }


def parse_scopes(value: str | list[str]) -> frozenset[str]:
    items = value.split(",") if isinstance(value, str) else value
    scopes = frozenset(s.strip().lower() for s in items if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope {', '.join(unknown)}: use ingest, read, admin")
    if not scopes:
        raise ValueError("a key needs at least one scope: ingest, read, admin")
    return scopes


#: Upper bounds of a key's own limits (as for an agent's).
MAX_RPM = 10**7
MAX_TPM = 10**12


def check_limit(name: str, value: int | None) -> int | None:
    """A key's ``rpm``/``tpm``: None (the install default) or 1..max."""
    top = MAX_RPM if name == "rpm" else MAX_TPM
    if value is not None and (isinstance(value, bool) or not 1 <= value <= top):
        raise ValueError(f"{name}: between 1 and {top}, or unset for the default")
    return value


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX) and 20 <= len(value) <= 128 and value.isascii()


def install_secret(engine: Engine) -> bytes:
    """The install's HMAC key; the first caller creates it (races resolve to one row)."""
    with writing(engine).begin() as conn:
        row = conn.execute(
            select(access_secrets.c.value).where(access_secrets.c.name == SECRET_NAME)
        ).first()
    if row is not None:
        return bytes.fromhex(row[0])
    try:
        with writing(engine).begin() as conn:
            conn.execute(
                insert(access_secrets).values(
                    name=SECRET_NAME, value=secrets.token_hex(32), created_ns=time.time_ns()
                )
            )
    except IntegrityError:
        pass  # another instance created it first
    return install_secret(engine)


def key_hash(secret: bytes, key: str) -> str:
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


def _row_key(row: Any) -> ApiKey:
    return ApiKey(
        id=int(row.id),
        name=row.name,
        prefix=row.prefix,
        scopes=frozenset(s for s in row.scopes.split(",") if s),
        created_ns=int(row.created_ns),
        last_used_ns=row.last_used_ns,
        revoked_ns=row.revoked_ns,
        rpm=row.rpm,
        tpm=row.tpm,
    )


def create_key(
    engine: Engine,
    name: str,
    scopes: frozenset[str],
    *,
    rpm: int | None = None,
    tpm: int | None = None,
) -> tuple[str, ApiKey]:
    """A new key: returns the full key (shown once) and its stored record."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError("name must be 1 to 200 characters")
    check_limit("rpm", rpm)
    check_limit("tpm", tpm)
    secret = install_secret(engine)
    for _ in range(5):  # a prefix collision (2^-48 per pair) just draws again
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        prefix = key[:PREFIX_LEN]
        now = time.time_ns()
        try:
            with writing(engine).begin() as conn:
                new_id = conn.execute(
                    insert(api_keys)
                    .values(
                        name=name,
                        prefix=prefix,
                        hash=key_hash(secret, key),
                        scopes=",".join(sorted(scopes)),
                        created_ns=now,
                        rpm=rpm,
                        tpm=tpm,
                    )
                    .returning(api_keys.c.id)
                ).scalar_one()
        except IntegrityError:
            continue
        return key, ApiKey(int(new_id), name, prefix, scopes, now, None, None, rpm, tpm)
    raise RuntimeError("could not draw a unique key prefix")


def list_keys(engine: Engine, include_revoked: bool = True) -> list[ApiKey]:
    query = select(api_keys).order_by(api_keys.c.id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_ns.is_(None))
    with engine.connect() as conn:
        return [_row_key(r) for r in conn.execute(query)]


def _ident(ident: str) -> Any:
    """The row condition for a key named by id or by prefix (a full key works too)."""
    return (
        api_keys.c.id == int(ident)
        if ident.isdigit() and len(ident) < 19
        else api_keys.c.prefix == ident[:PREFIX_LEN]
    )


def update_key_limits(engine: Engine, ident: str, **limits: int | None) -> ApiKey | None:
    """Set a key's own ``rpm`` and/or ``tpm`` (None: back to the install default); returns the
    key, or None if there is no such key. Running servers apply it within the key cache time."""
    values = {name: check_limit(name, value) for name, value in limits.items()}
    unknown = set(values) - {"rpm", "tpm"}
    if unknown:
        raise ValueError(f"unknown limit {', '.join(sorted(unknown))}")
    cond = _ident(ident)
    with writing(engine).begin() as conn:
        if values:
            conn.execute(update(api_keys).where(cond).values(**values))
        row = conn.execute(select(api_keys).where(cond)).first()
    return None if row is None else _row_key(row)


def revoke_key(engine: Engine, ident: str) -> ApiKey | None:
    """Revoke by id or by prefix; returns the key (already revoked ones unchanged)."""
    cond = _ident(ident)
    with writing(engine).begin() as conn:
        conn.execute(
            update(api_keys)
            .where(cond, api_keys.c.revoked_ns.is_(None))
            .values(revoked_ns=time.time_ns())
        )
        row = conn.execute(select(api_keys).where(cond)).first()
    return None if row is None else _row_key(row)


def count_active_keys(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(api_keys).where(api_keys.c.revoked_ns.is_(None))
            ).scalar_one()
        )


class KeyStore:
    """Per-request key checks with a short cache (thread-safe; call from worker threads)."""

    def __init__(self, engine: Engine, ttl: float = 1.0, touch_every: float = 60.0) -> None:
        self.engine = engine
        self.ttl = ttl
        self.touch_every = touch_every
        self._lock = threading.Lock()
        self._secret: bytes | None = None
        self._active: tuple[float, int] | None = None
        self._rows: dict[str, tuple[float, str | None, ApiKey | None]] = {}
        self._touched: dict[int, float] = {}

    def cached_active_count(self) -> int | None:
        """The active key count if the cache is fresh (no I/O: safe on the event loop)."""
        cached = self._active
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        return None

    def cached_verify(self, key: str) -> tuple[bool, ApiKey | None]:
        """(True, verdict) when the cache can answer without I/O, else (False, None)."""
        if not looks_like_key(key):
            return True, None
        cached = self._rows.get(key[:PREFIX_LEN])
        if cached is None or self._secret is None or time.monotonic() - cached[0] >= self.ttl:
            return False, None
        record = cached[2]
        if record is not None and self._touched.get(record.id) is None:
            return False, None  # let the first use write last_used
        ok = hmac.compare_digest(key_hash(self._secret, key), cached[1] or "0" * 64)
        if not ok or record is None or record.revoked_ns is not None:
            return True, None
        last = self._touched.get(record.id)
        if last is None or time.monotonic() - last >= self.touch_every:
            return False, None  # time to write last_used: do it in a thread
        return True, record

    def active_count(self) -> int:
        now = time.monotonic()
        with self._lock:
            cached = self._active
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        count = count_active_keys(self.engine)
        with self._lock:
            self._active = (now, count)
        return count

    def verify(self, key: str) -> ApiKey | None:
        """The live (not revoked) key record for ``key``, or None."""
        if not looks_like_key(key):
            return None
        prefix = key[:PREFIX_LEN]
        now = time.monotonic()
        with self._lock:
            cached = self._rows.get(prefix)
        if cached is None or now - cached[0] >= self.ttl:
            with self.engine.connect() as conn:
                row = conn.execute(select(api_keys).where(api_keys.c.prefix == prefix)).first()
            cached = (now, None, None) if row is None else (now, row.hash, _row_key(row))
            with self._lock:
                if len(self._rows) > 10_000:
                    self._rows.clear()
                self._rows[prefix] = cached
        _, stored, record = cached
        if self._secret is None:
            self._secret = install_secret(self.engine)
        # Compare even when no row matched, so a miss costs what a hit costs.
        expected = stored or "0" * 64
        ok = hmac.compare_digest(key_hash(self._secret, key), expected)
        if not ok or record is None or record.revoked_ns is not None:
            return None
        self._touch(record.id)
        return record

    def _touch(self, key_id: int) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._touched.get(key_id)
            if last is not None and now - last < self.touch_every:
                return
            self._touched[key_id] = now
        with writing(self.engine).begin() as conn:
            conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(last_used_ns=time.time_ns())
            )

    def invalidate(self) -> None:
        with self._lock:
            self._rows.clear()
            self._active = None
