"""What each channel is sent, built from the outbox payload (pure).

The outbox payload is the alert as it was at the transition::

    {"event": "firing" | "resolved" | "repeat" | "acknowledged" | "test",
     "alert": {"id", "rule", "fingerprint", "labels", "severity", "state", "value", "message",
               "expression", "fired_at", "resolved_at", "acked_by", "ack_comment", "url",
               "agent_url", "trace_url"}}

(``url``: the alert in the dashboard; ``agent_url``: its agent; ``trace_url``: a trace of the
window that shows the problem, on firing/repeat when one exists.)

Slack: an incoming-webhook message with a top-level ``text`` (notification fallback) and an
attachment coloured by severity holding the blocks (header, message, label fields, buttons to
the alert, its agent and a trace in the dashboard). PagerDuty: an Events API v2 event
(``trigger``/``acknowledge``/``resolve``, ``dedup_key`` = the alert fingerprint,
``payload.severity`` in critical/error/warning/info, ``links`` to the same pages).
Webhook: the payload itself, signed (``X-Pharos-Signature: sha256=HMAC(secret, timestamp + "." +
body)``). E-mail: plain text + HTML alternatives, with the idempotency key as ``Message-ID``
and ``X-Pharos-Idempotency-Key`` (a resend after a crash carries the same ones).
"""

from __future__ import annotations

import hashlib
import hmac
import html
from email.message import EmailMessage
from typing import Any

SEVERITY_COLOURS = {
    "critical": "#D00000",
    "error": "#E8590C",
    "warning": "#F2C744",
    "info": "#2F80ED",
}
RESOLVED_COLOUR = "#2EB67D"
EVENT_WORDS = {
    "firing": "FIRING",
    "repeat": "STILL FIRING",
    "resolved": "RESOLVED",
    "acknowledged": "ACKNOWLEDGED",
    "test": "TEST",
}
PAGERDUTY_ACTIONS = {
    "firing": "trigger",
    "repeat": "trigger",
    "test": "trigger",
    "acknowledged": "acknowledge",
    "resolved": "resolve",
}
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")


def title(payload: dict[str, Any]) -> str:
    alert = payload["alert"]
    word = EVENT_WORDS.get(payload["event"], payload["event"].upper())
    agent = alert.get("labels", {}).get("agent")
    suffix = f" · {agent}" if agent else ""
    return f"[{word}] {alert['rule']} ({alert['severity']}){suffix}"


def _labels_text(labels: dict[str, str]) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in labels.items() if k not in ("alertname",))


def slack_message(payload: dict[str, Any]) -> dict[str, Any]:
    alert = payload["alert"]
    event = payload["event"]
    colour = (
        RESOLVED_COLOUR
        if event == "resolved"
        else SEVERITY_COLOURS.get(alert["severity"], "#888888")
    )
    head = title(payload)
    fields = [
        {"type": "mrkdwn", "text": f"*{_escape_mrkdwn(k)}*\n{_escape_mrkdwn(v)}"[:2000]}
        for k, v in _labels_text(alert.get("labels", {}))
    ][:10]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head[:150], "emoji": True}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _escape_mrkdwn(alert.get("message") or head)[:3000]},
        },
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    context = [f"`{_escape_mrkdwn(alert.get('expression', ''))}`"[:300]]
    if alert.get("acked_by"):
        context.append(f"acknowledged by {_escape_mrkdwn(alert['acked_by'])}")
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
    )
    buttons = []
    if alert.get("url"):
        buttons.append(_button("Open alert", alert["url"], "open_alert"))
    if alert.get("agent_url"):
        buttons.append(_button("Open agent", alert["agent_url"], "open_agent"))
    if alert.get("trace_url"):
        buttons.append(_button("Open trace", alert["trace_url"], "open_trace"))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return {
        "text": f"{head}: {alert.get('message', '')}"[:3000],
        "attachments": [{"color": colour, "fallback": head, "blocks": blocks}],
    }


def _button(text: str, url: str, action_id: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "url": url[:3000],
        "action_id": action_id,
    }


def _escape_mrkdwn(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def pagerduty_event(payload: dict[str, Any], routing_key: str) -> dict[str, Any]:
    alert = payload["alert"]
    action = PAGERDUTY_ACTIONS.get(payload["event"], "trigger")
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": alert["fingerprint"],
    }
    if action != "trigger":
        return event
    severity = alert["severity"] if alert["severity"] in PAGERDUTY_SEVERITIES else "error"
    labels = alert.get("labels", {})
    event["payload"] = {
        "summary": (alert.get("message") or title(payload))[:1024],
        "source": labels.get("agent") or "pharos",
        "severity": severity,
        "timestamp": alert.get("fired_at") or payload.get("at"),
        "component": labels.get("agent") or None,
        "group": labels.get("model") or None,
        "class": alert["rule"],
        "custom_details": {
            "expression": alert.get("expression"),
            "value": alert.get("value"),
            "labels": labels,
        },
    }
    event["payload"] = {k: v for k, v in event["payload"].items() if v is not None}
    event["client"] = "Pharos"
    links = []
    if alert.get("url"):
        event["client_url"] = alert["url"]
        links.append({"href": alert["url"], "text": "Alert in Pharos"})
    if alert.get("agent_url"):
        links.append({"href": alert["agent_url"], "text": f"Agent {labels.get('agent')}"[:200]})
    if alert.get("trace_url"):
        links.append({"href": alert["trace_url"], "text": "Trace in Pharos"})
    if links:
        event["links"] = links
    return event


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` over ``timestamp + "." + body`` (receivers recompute and compare, and
    reject old timestamps to stop replays)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


_LINKS = (("url", "Open"), ("agent_url", "Agent"), ("trace_url", "Trace"))
_HTML_LINKS = {"url": "Open in Pharos", "agent_url": "Open agent", "trace_url": "Open trace"}


def email_message(
    payload: dict[str, Any], sender: str, recipients: list[str], key: str | None = None
) -> EmailMessage:
    """``key``: the notification's idempotency key, sent as ``Message-ID`` (so a resend is the
    same message to a server or client that dedupes on it) and ``X-Pharos-Idempotency-Key``."""
    alert = payload["alert"]
    head = title(payload)
    labels = _labels_text(alert.get("labels", {}))
    lines = [
        head,
        "",
        alert.get("message", ""),
        "",
        f"Expression: {alert.get('expression', '')}",
        f"Value: {alert.get('value')}",
        *(f"{k}: {v}" for k, v in labels),
    ]
    links = [(word, alert[name]) for name, word in _LINKS if alert.get(name)]
    if links:
        lines += ["", *(f"{word}: {url}" for word, url in links)]
    msg = EmailMessage()
    msg["Subject"] = head[:200]
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["X-Pharos-Fingerprint"] = alert["fingerprint"]
    if key:
        msg["X-Pharos-Idempotency-Key"] = key
        msg["Message-ID"] = f"<{_message_id(key)}@pharos>"
    msg.set_content("\n".join(lines))
    colour = (
        RESOLVED_COLOUR
        if payload["event"] == "resolved"
        else SEVERITY_COLOURS.get(alert["severity"], "#888")
    )
    rows = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in labels
    )
    link = "".join(
        f"<p><a href='{html.escape(alert[name], quote=True)}'>{text}</a></p>"
        for name, text in _HTML_LINKS.items()
        if alert.get(name)
    )
    msg.add_alternative(
        f"<html><body><h2 style='color:{colour}'>{html.escape(head)}</h2>"
        f"<p>{html.escape(alert.get('message', ''))}</p>"
        f"<p><code>{html.escape(str(alert.get('expression', '')))}</code></p>"
        f"<table>{rows}</table>{link}</body></html>",
        subtype="html",
    )
    return msg


def _message_id(key: str) -> str:
    """The idempotency key as the left part of a Message-ID (RFC 5322 dot-atom characters)."""
    return "".join(c if c.isalnum() or c in "-_." else "." for c in key)[:200].strip(".") or "x"
