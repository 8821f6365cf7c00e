"""Decompress + decode + normalize request bodies off the event loop.

With ``workers=0`` the work runs in a thread of the server process. With ``workers>=1`` it runs
in that many worker processes, so a second core does the protobuf decoding and convention
mapping while the server process does HTTP and the database writes. A worker that dies
(crash, OOM kill) is replaced; the request it held is answered 503 so the exporter retries.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TypeVar

import anyio

from pharos.server.cost.book import PriceBook, PriceSnapshot, price_records
from pharos.server.ingest.body import decode_content
from pharos.server.ingest.decode import decode_traces
from pharos.server.ingest.derive import derive
from pharos.server.ingest.logs import NormalizedLogs, decode_logs, normalize_logs
from pharos.server.ingest.metrics import MetricBatch, decode_metrics, normalize_metrics
from pharos.server.ingest.normalize import Limits, NormalizedBatch, normalize_traces
from pharos.server.ingest.writer import Unavailable
from pharos.server.ops.gc_tuning import tune_gc

log = logging.getLogger("pharos.ingest")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ParseConfig:
    max_decompressed_bytes: int
    limits: Limits
    #: Tune the worker processes' garbage collector (ops/gc_tuning.py), as the server's.
    gc_tuning: bool = False


def parse_traces(
    body: bytes,
    content_type: str,
    encoding: str | None,
    config: ParseConfig,
    prices: PriceSnapshot | None = None,
) -> NormalizedBatch:
    """Decompress, decode and normalize one OTLP trace request body (pure CPU work); with the
    price book's ``prices``, also price the model calls and compute what the spans add to the
    summaries and rollups (ingest/derive.py), so the writer has less to do."""
    raw = decode_content(body, encoding, config.max_decompressed_bytes)
    batch = normalize_traces(decode_traces(raw, content_type), config.limits)
    if prices is not None:
        book = _book_for(prices)
        derive(batch, lambda records: price_records(book, records), prices.version)
    return batch


#: The price book this process prices with, rebuilt when the server's version changes.
_books: tuple[int, PriceBook] | None = None
_books_lock = threading.Lock()


def _book_for(prices: PriceSnapshot) -> PriceBook:
    global _books
    current = _books
    if current is not None and current[0] == prices.version:
        return current[1]
    with _books_lock:
        if _books is None or _books[0] != prices.version:
            _books = (prices.version, PriceBook.from_snapshot(prices))
        return _books[1]


_worker_config: ParseConfig | None = None


def _init_worker(config: ParseConfig) -> None:
    global _worker_config
    # A SIGTERM/Ctrl-C sent to the whole process group (systemd, a terminal) is for the server,
    # which finishes the requests in flight (parsed here) and then shuts the workers down.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _worker_config is None:
        if config.gc_tuning:
            tune_gc()
        threading.Thread(
            target=_exit_with_parent, args=(os.getppid(),), name="pharos-parent-watch", daemon=True
        ).start()
    _worker_config = config


def _exit_with_parent(parent: int) -> None:
    """A worker whose server was killed (SIGKILL, OOM) must not live on as an orphan."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def _parse_in_worker(
    body: bytes, content_type: str, encoding: str | None, prices: PriceSnapshot | None = None
) -> NormalizedBatch:
    assert _worker_config is not None
    return parse_traces(body, content_type, encoding, _worker_config, prices)


def parse_metrics_body(
    body: bytes, content_type: str, encoding: str | None, config: ParseConfig
) -> MetricBatch:
    """Decompress, decode and normalize one OTLP metrics request body (pure CPU work)."""
    raw = decode_content(body, encoding, config.max_decompressed_bytes)
    return normalize_metrics(decode_metrics(raw, content_type), config.limits)


def _parse_metrics_in_worker(body: bytes, content_type: str, encoding: str | None) -> MetricBatch:
    assert _worker_config is not None
    return parse_metrics_body(body, content_type, encoding, _worker_config)


def parse_logs_body(
    body: bytes, content_type: str, encoding: str | None, config: ParseConfig
) -> NormalizedLogs:
    """Decompress, decode and normalize one OTLP logs request body (pure CPU work)."""
    raw = decode_content(body, encoding, config.max_decompressed_bytes)
    return normalize_logs(decode_logs(raw, content_type), config.limits)


def _parse_logs_in_worker(body: bytes, content_type: str, encoding: str | None) -> NormalizedLogs:
    assert _worker_config is not None
    return parse_logs_body(body, content_type, encoding, _worker_config)


class Parser:
    def __init__(
        self, config: ParseConfig, workers: int = 0, prices: PriceBook | None = None
    ) -> None:
        self.config = config
        self.workers = workers
        #: The server's price book: trace requests are priced while parsed (ingest/derive.py).
        self.prices = prices
        self._pool: ProcessPoolExecutor | None = None

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the server process has threads (writer, uvicorn) to not copy.
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.config,),
            )
        return self._pool

    def start(self) -> None:
        """Start the worker processes now rather than at the first request."""
        if self.workers:
            pool = self._ensure_pool()
            for future in [pool.submit(_init_worker, self.config) for _ in range(self.workers)]:
                future.result(timeout=60)

    async def parse(self, body: bytes, content_type: str, encoding: str | None) -> NormalizedBatch:
        book = self.prices
        if book is None:
            return await self.run(parse_traces, _parse_in_worker, body, content_type, encoding)
        if book.due:  # an override changed, or the refresh interval passed: re-read first
            await anyio.to_thread.run_sync(book.table)
        snapshot = book.snapshot()
        return await self.run(
            functools.partial(parse_traces, prices=snapshot),
            functools.partial(_parse_in_worker, prices=snapshot),
            body,
            content_type,
            encoding,
        )

    async def parse_metrics(
        self, body: bytes, content_type: str, encoding: str | None
    ) -> MetricBatch:
        return await self.run(
            parse_metrics_body, _parse_metrics_in_worker, body, content_type, encoding
        )

    async def parse_logs(
        self, body: bytes, content_type: str, encoding: str | None
    ) -> NormalizedLogs:
        return await self.run(parse_logs_body, _parse_logs_in_worker, body, content_type, encoding)

    async def run(
        self,
        local: Callable[[bytes, str, str | None, ParseConfig], T],
        in_worker: Callable[[bytes, str, str | None], T],
        body: bytes,
        content_type: str,
        encoding: str | None,
    ) -> T:
        """``local(body, content_type, encoding, config)`` in a thread, or its ``in_worker``
        twin (a module-level function using the worker's config) in a worker process."""
        if not self.workers:
            return await anyio.to_thread.run_sync(local, body, content_type, encoding, self.config)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._ensure_pool(), in_worker, body, content_type, encoding
            )
        except BrokenProcessPool:
            log.error("an ingest worker process died; starting new ones")
            broken, self._pool = self._pool, None
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            raise Unavailable("ingest worker restarted") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=False)
            self._pool = None
