"""Wires the alerting room into the app's lifespan: the engine loop (leader only), the outbox
worker (every instance), the channels configured in settings and the default rules."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from contextlib import AsyncExitStack
from typing import Any

import anyio
from fastapi import FastAPI

from pharos.server.alerting.engine import AlertEngine, CycleResult
from pharos.server.alerting.outbox import OutboxWorker
from pharos.server.alerting.state import NS
from pharos.server.db.engine import make_engine
from pharos.server.settings import Settings

log = logging.getLogger("pharos.alerting")
#: The channels settings manage: created, refreshed and enabled at every start from their
#: settings, disabled when their settings are gone.
ENV_CHANNELS = ("env-slack", "env-pagerduty", "env-webhook", "env-email")
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})  # noqa: S104 - compared, not bound


def dashboard_url(settings: Settings) -> str:
    """Base URL of notification links: ``PHAROS_ALERT_DASHBOARD_URL`` (the public URL behind a
    proxy or load balancer), else this server's own address, with 127.0.0.1 for a wildcard
    bind (``http://0.0.0.0:4318`` opens nothing in a browser)."""
    if settings.alert_dashboard_url:
        return settings.alert_dashboard_url.rstrip("/")
    host = settings.host
    if host in _WILDCARD_HOSTS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):  # an IPv6 address
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def configured_channels(settings: Settings) -> list[dict[str, Any]]:
    """Channels from settings (env/pharos.toml), kept in sync by name at every start."""
    out: list[dict[str, Any]] = []
    every = ["info", "warning", "error", "critical"]
    if settings.alert_slack_webhook_url:
        out.append(
            {
                "name": "env-slack",
                "type": "slack",
                "config": {"url": settings.alert_slack_webhook_url},
                "severities": every,
            }
        )
    if settings.alert_pagerduty_routing_key:
        out.append(
            {
                "name": "env-pagerduty",
                "type": "pagerduty",
                "config": {
                    "routing_key": settings.alert_pagerduty_routing_key,
                    "url": settings.alert_pagerduty_url,
                },
                "severities": ["critical"],
            }
        )
    if settings.alert_webhook_url:
        out.append(
            {
                "name": "env-webhook",
                "type": "webhook",
                "config": {
                    "url": settings.alert_webhook_url,
                    "secret": settings.alert_webhook_secret or "",
                },
                "severities": every,
            }
        )
    if settings.alert_smtp_host:
        out.append(
            {
                "name": "env-email",
                "type": "email",
                "config": {
                    "host": settings.alert_smtp_host,
                    "port": settings.alert_smtp_port,
                    "username": settings.alert_smtp_username,
                    "password": settings.alert_smtp_password,
                    "starttls": settings.alert_smtp_starttls,
                    "from": settings.alert_smtp_from,
                    "to": settings.alert_smtp_to,
                },
                "severities": ["error", "critical"],
            }
        )
    return out


class Alerting:
    """The alerting room's services for one app (``app.state.alerting``)."""

    def __init__(self, settings: Settings, read_engine: Any) -> None:
        self.settings = settings
        self.write_engine = make_engine(
            settings.database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            sqlite_begin="IMMEDIATE",
            pool_size=2,
        )
        self.engine = AlertEngine(
            read_engine, self.write_engine, dashboard_url=dashboard_url(settings)
        )
        self.worker = OutboxWorker(
            self.write_engine,
            poll_seconds=settings.alert_outbox_poll_seconds,
            timeout_seconds=settings.alert_send_timeout_seconds,
            base_seconds=settings.alert_retry_base_seconds,
            max_backoff_seconds=settings.alert_retry_max_seconds,
            max_attempts=settings.alert_max_attempts,
        )
        self.lock = threading.Lock()  # one cycle at a time in this process
        self.leader = False
        self.loop_running = False

    def evaluate_now(self, now_ns: int | None = None) -> CycleResult:
        with self.lock:
            return self.engine.run_cycle(now_ns)

    def _tick(self) -> None:
        interval = self.settings.alert_eval_interval_seconds
        ttl_ns = int(max(3 * interval, 10.0) * NS)
        self.leader = self.engine.lead(time.time_ns(), ttl_ns)
        if self.leader:
            self.evaluate_now()
        else:
            self.engine.refresh_firing()

    async def _loop(self) -> None:
        self.loop_running = True
        try:
            while True:
                started = time.monotonic()
                try:
                    await anyio.to_thread.run_sync(self._tick)
                    self.engine.last_error = None
                    self.worker.wake.set()
                except Exception as exc:  # never die: log, count, try next interval
                    self.engine.failures += 1
                    self.engine.last_error = f"{type(exc).__name__}: {exc}"[:300]
                    log.exception("alert evaluation failed")
                elapsed = time.monotonic() - started
                await asyncio.sleep(max(0.0, self.settings.alert_eval_interval_seconds - elapsed))
        finally:
            self.loop_running = False

    def _setup(self) -> None:
        now = time.time_ns()
        if self.settings.alert_default_rules:
            self.engine.create_default_rules(now)
        # Always, also with none configured: a channel whose settings were removed stops.
        disabled = self.engine.sync_channels(configured_channels(self.settings), now, ENV_CHANNELS)
        for name in disabled:
            log.info("channel %s disabled: its settings are no longer set", name)
        self.engine.refresh_firing()

    def _step_down(self) -> None:
        if self.leader:
            self.engine.step_down()

    async def start(self, stack: AsyncExitStack) -> None:
        stack.callback(self.write_engine.dispose)
        await anyio.to_thread.run_sync(self._setup)
        outbox_task = asyncio.create_task(self.worker.run(), name="pharos-outbox")
        eval_task = asyncio.create_task(self._loop(), name="pharos-alert-engine")

        async def stop() -> None:
            eval_task.cancel()
            await asyncio.gather(eval_task, return_exceptions=True)
            await self.worker.stop(outbox_task)
            try:
                await anyio.to_thread.run_sync(self._step_down)
            except Exception:
                log.warning("could not release the alert engine lease", exc_info=True)

        stack.push_async_callback(stop)

    def health(self) -> dict[str, Any]:
        result = self.engine.last_result
        return {
            "engine": "running" if self.loop_running else "stopped",
            "leader": self.leader,
            "last_cycle": result.as_dict() if result else None,
            "cycle_failures": self.engine.failures,
            "last_error": self.engine.last_error,
            "outbox_worker": "running" if self.worker.running else "stopped",
            "outbox_sent": self.worker.stats.sent,
            "outbox_retried": self.worker.stats.retried,
            "outbox_failed": self.worker.stats.failed,
            "outbox_last_error": self.worker.stats.last_error,
        }


async def start_alerting(app: FastAPI, settings: Settings, stack: AsyncExitStack) -> Alerting:
    alerting = Alerting(settings, app.state.engine)
    await alerting.start(stack)
    app.state.alerting = alerting
    app.state.firing_alerts = alerting.engine.firing
    return alerting
