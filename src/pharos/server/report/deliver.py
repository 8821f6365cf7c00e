"""Send a report through an alerting channel (called by the outbox worker for rows whose event
is ``report``): e-mail as HTML with the chart as an inline image (a ``multipart/related`` PNG
part with a Content-ID the HTML refers to) and a plain-text alternative; Slack as blocks (an
incoming webhook cannot carry an image, so Slack gets the figures); a webhook gets the report
JSON (signed like alerts). PagerDuty does not take reports."""

from __future__ import annotations

import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import anyio
import httpx
import orjson

from pharos.server.alerting.notifiers import payloads
from pharos.server.alerting.notifiers.send import DeliveryError, _post, _post_raw, send_smtp
from pharos.server.report.render import chart_png, headline, slack_message, text, to_html

CHART_FILENAME = "pharos-report.png"


def email_message(report: dict[str, Any], sender: str, recipients: list[str]) -> EmailMessage:
    summary = ", ".join(f"{label} {value}" for label, value, _ in headline(report)[:4])
    msg = EmailMessage()
    msg["Subject"] = f"[Pharos] {report['title']}: {summary}"[:200]
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="pharos.local")
    msg["X-Pharos-Report"] = report["kind"]
    msg.set_content(text(report))
    cid = make_msgid(domain="pharos.report")  # "<...@pharos.report>"
    msg.add_alternative(to_html(report, "cid:" + cid[1:-1]), subtype="html")
    html_part = msg.get_body(preferencelist=("html",))
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(
        chart_png(report), "image", "png", cid=cid, filename=CHART_FILENAME, disposition="inline"
    )
    return msg


async def deliver_report(
    channel_type: str,
    config: dict[str, Any],
    payload: dict[str, Any],
    *,
    key: str,
    client: httpx.AsyncClient,
    seconds: float,
) -> None:
    report = payload["report"]
    if channel_type == "slack":
        await _post(client, config["url"], slack_message(report), {}, seconds)
    elif channel_type == "email":
        recipients = list(config.get("to") or [])
        if not recipients:
            raise DeliveryError("no recipients (config.to)", retryable=False)
        sender = str(config.get("from") or "pharos@localhost")

        def send() -> None:
            send_smtp(config, email_message(report, sender, recipients), seconds)

        await anyio.to_thread.run_sync(send)
    elif channel_type == "webhook":
        raw = orjson.dumps({**payload, "idempotency_key": key})
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Pharos-Timestamp": ts,
            "X-Pharos-Event": "report",
            "X-Pharos-Idempotency-Key": key,
        }
        if config.get("secret"):
            headers["X-Pharos-Signature"] = payloads.sign(str(config["secret"]), ts, raw)
        await _post_raw(client, config["url"], raw, headers, seconds)
    else:
        raise DeliveryError(f"a {channel_type} channel does not take reports", retryable=False)
