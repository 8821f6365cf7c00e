"""The price book used at ingest (bundled table + the ``model_prices`` overrides, cached in
memory) and the writer's cost hook.

Design (docs/costs.md): normalization runs in worker processes without database access, so
spans are priced in the writer thread, by :meth:`CostHook.price`, called once per transaction
**before** the trace and rollup deltas are computed: a span's cost lands in ``spans``,
``traces`` and the rollups in the same transaction. A cost sent by the client is kept. The
overrides are re-read when this instance changes them (``invalidate``) and every
``refresh_seconds`` (so another instance's change is seen within that time).
:meth:`CostHook.record` adds the stored model calls to ``llm_usage_daily`` in the same
transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from pharos.server.cost.prices import Price, PriceTable, bundled_table, call_cost_nanousd
from pharos.server.cost.usage import USAGE_VALUES, UsageDelta, UsageKey, usage_deltas
from pharos.server.db.schema import llm_usage_daily, model_prices
from pharos.server.ingest.normalize import MODEL_CALL_KINDS, SpanRecord

log = logging.getLogger("pharos.cost")
_MEMO_LIMIT = 10_000


def load_overrides(conn: Connection) -> list[tuple[str, Price]]:
    rows = conn.execute(select(model_prices).order_by(model_prices.c.id)).all()
    return [
        (
            row.model,
            Price(
                input=row.input_microusd_per_mtok,
                output=row.output_microusd_per_mtok,
                cached=row.cached_microusd_per_mtok,
                effective_from_ns=row.effective_from_ns,
                source="override",
                id=row.id,
            ),
        )
        for row in rows
    ]


class PriceSnapshot(NamedTuple):
    """A price book's state, small enough to send with every request to an ingest worker."""

    version: int
    overrides: tuple[tuple[str, Price], ...]
    aliases: tuple[tuple[str, str], ...]


def price_records(book: PriceBook, records: Iterable[SpanRecord]) -> None:
    """Set the table cost on model calls that have a model and tokens but no client cost."""
    for record in records:
        if record.cost_nanousd is None and record.kind in MODEL_CALL_KINDS:
            record.cost_nanousd = book.cost_of(record)


class PriceBook:
    """Thread-safe: the writer thread prices spans while API handlers invalidate it."""

    def __init__(
        self,
        engine: Engine | None,
        *,
        refresh_seconds: float = 30.0,
        aliases: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._refresh = refresh_seconds
        self._aliases = dict(aliases or {})
        self._clock = clock
        self._lock = threading.Lock()
        self._table = bundled_table().with_overrides([], self._aliases)
        self._keys: dict[str, str | None] = {}
        self._due = 0.0  # load at first use
        self._failing = False
        self._overrides: tuple[tuple[str, Price], ...] = ()
        #: Changes with every load of the overrides: ingest workers rebuild their copy of the
        #: table (:meth:`snapshot`, :meth:`from_snapshot`) when it does.
        self.version = 0

    @property
    def due(self) -> bool:
        """The overrides are to be (re-)read before the next pricing."""
        return self._engine is not None and self._clock() >= self._due

    def snapshot(self) -> PriceSnapshot:
        """What another process needs to price exactly as this book does now (no I/O)."""
        return PriceSnapshot(self.version, self._overrides, tuple(self._aliases.items()))

    @classmethod
    def from_snapshot(cls, snapshot: PriceSnapshot) -> PriceBook:
        """A book without database access pricing as the snapshot's book did."""
        book = cls(None, aliases=dict(snapshot.aliases))
        book._table = bundled_table().with_overrides(snapshot.overrides, book._aliases)
        book._overrides = snapshot.overrides
        book.version = snapshot.version
        return book

    def invalidate(self) -> None:
        """Re-read the overrides at next use (after this instance changed them)."""
        self._due = 0.0

    def table(self) -> PriceTable:
        if self._engine is not None and self._clock() >= self._due:
            with self._lock:
                if self._clock() >= self._due:
                    self._reload()
        return self._table

    def _reload(self) -> None:
        assert self._engine is not None
        self._due = self._clock() + self._refresh
        try:
            with self._engine.connect() as conn:
                overrides = load_overrides(conn)
        except Exception as exc:  # keep pricing with what we had; say so once
            if not self._failing:
                log.warning("could not read model_prices (keeping the last prices): %s", exc)
            self._failing = True
            return
        self._failing = False
        self._table = bundled_table().with_overrides(overrides, self._aliases)
        self._overrides = tuple(overrides)
        self._keys = {}
        self.version += 1

    def resolve(self, model: str) -> str | None:
        table = self.table()
        keys = self._keys
        if model in keys:
            return keys[model]
        key = table.resolve(model)
        if len(keys) >= _MEMO_LIMIT:
            keys.clear()
        keys[model] = key
        return key

    def price_of(self, model: str, at_ns: int) -> Price | None:
        key = self.resolve(model)
        return None if key is None else self.table().price_at(key, at_ns)

    def cost_of(self, record: SpanRecord) -> int | None:
        """The table cost of a model call (None: not a priced model call)."""
        return self.table_cost(
            record.kind,
            record.model,
            record.start_ns,
            record.input_tokens,
            record.output_tokens,
            record.cached_tokens,
        )

    def table_cost(
        self,
        kind: str,
        model: str | None,
        start_ns: int,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_tokens: int | None,
    ) -> int | None:
        """Cost of a model call at the price in effect at its start; None when it is not a
        model call, has no model or tokens, or its model has no price."""
        if (
            kind not in MODEL_CALL_KINDS
            or not model
            or (input_tokens is None and output_tokens is None)
        ):
            return None
        price = self.price_of(model, start_ns)
        if price is None:
            return None
        return call_cost_nanousd(price, input_tokens, output_tokens, cached_tokens)


class CostHook:
    """What the ingest writer calls: :meth:`price` before deltas, :meth:`record` after."""

    def __init__(self, book: PriceBook, dialect: str) -> None:
        self.book = book
        self.failures = 0
        insert: Any = sqlite.insert if dialect == "sqlite" else postgresql.insert
        stmt = insert(llm_usage_daily)
        t = llm_usage_daily.c
        self._usage_upsert = stmt.on_conflict_do_update(
            index_elements=["day", "agent", "model", "prompt_hash"],
            set_={c: t[c] + stmt.excluded[c] for c in USAGE_VALUES},
        )

    def price(self, records: Iterable[SpanRecord]) -> None:
        """Set the table cost on model calls that have a model and tokens but no client cost.
        Never raises: a span the price book cannot price is stored without a cost."""
        try:
            price_records(self.book, records)
        except Exception:
            self.failures += 1
            log.exception("pricing spans failed; they are stored without a table cost")

    def record(self, conn: Connection, new: Sequence[SpanRecord]) -> None:
        """Add the stored model calls to ``llm_usage_daily`` (inside the writer's transaction)."""
        self._add(conn, usage_deltas(new, MODEL_CALL_KINDS))

    def move(
        self, conn: Connection, before: Sequence[SpanRecord], after: Sequence[SpanRecord]
    ) -> None:
        """Move stored model calls between agents (ingest/adopt.py): take off what ``before``
        added, add ``after``."""
        deltas = usage_deltas(after, MODEL_CALL_KINDS)
        for key, delta in usage_deltas(before, MODEL_CALL_KINDS).items():
            target = deltas.setdefault(key, UsageDelta())
            target.subtract(delta)
        self._add(conn, deltas)
        emptied = [key for key, delta in deltas.items() if delta.calls < 0]
        if emptied:  # an agent's row that only held the moved calls goes
            t = llm_usage_daily.c
            conn.execute(
                delete(llm_usage_daily).where(
                    t.day == bindparam("k_day"),
                    t.agent == bindparam("k_agent"),
                    t.model == bindparam("k_model"),
                    t.prompt_hash == bindparam("k_hash"),
                    t.calls <= 0,
                ),
                [
                    {"k_day": d, "k_agent": a, "k_model": m, "k_hash": h}
                    for d, a, m, h in sorted(emptied)
                ],
            )

    def _add(self, conn: Connection, deltas: Mapping[UsageKey, UsageDelta]) -> None:
        if not deltas:
            return
        rows = [
            dict(zip(("day", "agent", "model", "prompt_hash"), key, strict=True))
            | dict(zip(USAGE_VALUES, deltas[key].values(), strict=True))
            for key in sorted(deltas)  # one lock order for concurrent writers
        ]
        conn.execute(self._usage_upsert, rows)
