"""Send one notification to one channel (the I/O edge of the notifiers).

Every failure is a :class:`DeliveryError`; ``retryable`` says whether the outbox should try
again (timeouts, refused connections, 408/429/5xx) or give up (another 4xx: the payload or the
channel's configuration is wrong and will stay wrong).
"""

from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage
from typing import Any

import anyio
import httpx
import orjson

from pharos.server.alerting.notifiers import payloads

PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
CHANNEL_TYPES = ("slack", "pagerduty", "webhook", "email")


class DeliveryError(Exception):
    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


async def deliver(
    channel_type: str,
    config: dict[str, Any],
    payload: dict[str, Any],
    *,
    key: str,
    client: httpx.AsyncClient,
    seconds: float,
) -> None:
    if payload.get("event") == "report":  # a scheduled report (report/deliver.py)
        from pharos.server.report.deliver import deliver_report

        await deliver_report(channel_type, config, payload, key=key, client=client, seconds=seconds)
        return
    if channel_type == "slack":
        await _post(client, config["url"], payloads.slack_message(payload), {}, seconds)
    elif channel_type == "pagerduty":
        body = payloads.pagerduty_event(payload, config["routing_key"])
        await _post(client, config.get("url") or PAGERDUTY_URL, body, {}, seconds)
    elif channel_type == "webhook":
        raw = orjson.dumps({**payload, "idempotency_key": key})
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Pharos-Timestamp": ts,
            "X-Pharos-Event": payload["event"],
            "X-Pharos-Idempotency-Key": key,
        }
        if config.get("secret"):
            headers["X-Pharos-Signature"] = payloads.sign(str(config["secret"]), ts, raw)
        await _post_raw(client, config["url"], raw, headers, seconds)
    elif channel_type == "email":
        await anyio.to_thread.run_sync(_send_email, config, payload, seconds, key)
    else:
        raise DeliveryError(f"unknown channel type {channel_type!r}", retryable=False)


async def _post(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    seconds: float,
) -> None:
    await _post_raw(
        client, url, orjson.dumps(body), {"Content-Type": "application/json", **headers}, seconds
    )


async def _post_raw(
    client: httpx.AsyncClient, url: str, raw: bytes, headers: dict[str, str], seconds: float
) -> None:
    try:
        response = await client.post(url, content=raw, headers=headers, timeout=seconds)
    except httpx.TimeoutException:
        raise DeliveryError(f"timed out after {seconds:g}s") from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}"[:300]) from None
    if 200 <= response.status_code < 300:
        return
    text = response.text[:200]
    retryable = response.status_code in (408, 425, 429) or response.status_code >= 500
    raise DeliveryError(f"HTTP {response.status_code}: {text}", retryable=retryable)


def _send_email(
    config: dict[str, Any], payload: dict[str, Any], seconds: float, key: str | None = None
) -> None:
    recipients = list(config.get("to") or [])
    if not recipients:
        raise DeliveryError("no recipients (config.to)", retryable=False)
    sender = str(config.get("from") or "pharos@localhost")
    msg = payloads.email_message(payload, sender, recipients, key)
    send_smtp(config, msg, seconds)


def send_smtp(config: dict[str, Any], msg: EmailMessage, seconds: float) -> None:
    """Send ``msg`` through the channel's SMTP server (errors as :class:`DeliveryError`)."""
    host, port = str(config.get("host") or "localhost"), int(config.get("port") or 25)
    try:
        smtp: smtplib.SMTP
        if config.get("ssl"):
            smtp = smtplib.SMTP_SSL(
                host, port, timeout=seconds, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(host, port, timeout=seconds)
        with smtp:
            if config.get("starttls") and not config.get("ssl"):
                smtp.starttls(context=ssl.create_default_context())
            if config.get("username"):
                smtp.login(str(config["username"]), str(config.get("password") or ""))
            smtp.send_message(msg)
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(
            f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:300], retryable=exc.smtp_code < 500
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}"[:300]) from None
