"""Routes of the alerting room: rules, alerts (ack, resolve, summary), silences, channels,
the outbox, and evaluate-now. Handlers parse input, call the room and shape JSON."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from pharos.server.alerting import budget_alerts, store
from pharos.server.alerting.engine import state_of
from pharos.server.alerting.language import FUNCTIONS, RuleSyntaxError, parse
from pharos.server.alerting.notifiers.send import CHANNEL_TYPES
from pharos.server.alerting.rules import RuleDef, summary_of, validate_labels
from pharos.server.alerting.service import Alerting
from pharos.server.alerting.silences import parse_matchers
from pharos.server.alerting.state import NS, resolve_manually
from pharos.server.db.schema import alerts
from pharos.server.errors import ApiError
from pharos.server.responses import FastJSONResponse
from pharos.server.timeparse import parse_duration_seconds, parse_instant_ns

router = APIRouter(prefix="/api/v1", tags=["alerting"])
MAX_PAGE = 500
MAX_DURATION_S = 30 * 86400
_BAD = "invalid_parameter"


def _alerting(request: Request) -> Alerting:
    alerting: Alerting | None = getattr(request.app.state, "alerting", None)
    if alerting is None:
        raise ApiError(503, "alerting is not running yet", "unavailable")
    return alerting


def _duration(value: str | int | None, name: str, *, minimum: int = 0) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        seconds = float(value)
    else:
        try:
            seconds = 0.0 if value.strip() in ("0", "") else parse_duration_seconds(value)
        except ValueError as exc:
            raise ApiError(400, f"{name}: {exc}", "invalid_parameter") from None
    if seconds != int(seconds) or not minimum <= seconds <= MAX_DURATION_S:
        raise ApiError(
            400, f"{name}: whole seconds between {minimum}s and 30d", "invalid_parameter"
        )
    return int(seconds)


def _page(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    cursor = str(items[-1]["id"]) if len(items) == limit and items else None
    return {"items": items, "next_cursor": cursor}


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise ApiError(400, "cursor: use next_cursor from the previous page", "invalid_parameter")
    return int(value)


# --- rules ---------------------------------------------------------------------------------------


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = Field(default=None, min_length=1, max_length=200)
    expression: str | None = Field(default=None, max_length=2000)
    for_: str | int | None = Field(default=None, alias="for", description="e.g. 5m")
    keep_firing_for: str | int | None = Field(default=None, description="resolve delay, e.g. 5m")
    repeat_interval: str | int | None = Field(default=None, description="e.g. 4h; 0 = never")
    severity: Literal["info", "warning", "error", "critical"] | None = None
    labels: dict[str, Any] | None = None
    message: str | None = Field(default=None, max_length=2000)
    channels: list[str] | None = Field(default=None, max_length=32)
    enabled: bool | None = None


class ExpressionIn(BaseModel):
    expression: str = Field(max_length=100_000)


def _rule_data(body: RuleIn, *, creating: bool) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if creating:
        missing = [n for n in ("name", "expression", "severity") if getattr(body, n) is None]
        if missing:
            raise ApiError(400, f"missing: {', '.join(missing)}", "invalid_parameter")
    if body.name is not None:
        data["name"] = body.name.strip()
    if body.expression is not None:
        try:
            parse(body.expression)
        except RuleSyntaxError as exc:
            raise ApiError(400, f"expression: {exc}", "invalid_expression") from None
        data["expression"] = body.expression.strip()
    for field, column in (
        ("for_", "for_s"),
        ("keep_firing_for", "keep_firing_for_s"),
        ("repeat_interval", "repeat_interval_s"),
    ):
        seconds = _duration(getattr(body, field), field.rstrip("_"))
        if seconds is not None:
            data[column] = seconds
    if body.severity is not None:
        data["severity"] = body.severity
    if body.labels is not None:
        try:
            data["labels"] = validate_labels(body.labels)
        except ValueError as exc:
            raise ApiError(400, f"labels: {exc}", "invalid_parameter") from None
    if body.message is not None:
        data["message"] = body.message
    if body.channels is not None:
        if any(not isinstance(c, str) or not 0 < len(c) <= 200 for c in body.channels):
            raise ApiError(400, "channels: a list of channel names", "invalid_parameter")
        data["channels"] = list(dict.fromkeys(body.channels))
    if body.enabled is not None:
        data["enabled"] = body.enabled
    return data


@router.get("/alerts/rules", summary="Alert rules")
async def list_rules(request: Request) -> FastJSONResponse:
    alerting = _alerting(request)

    def run() -> list[dict[str, Any]]:
        with alerting.engine.read_engine.connect() as conn:
            return [store.rule_json(r) for r in store.list_rules(conn)]

    return FastJSONResponse({"items": await anyio.to_thread.run_sync(run)})


@router.post("/alerts/rules/validate", summary="Check a rule expression; errors with position")
async def validate_rule(body: ExpressionIn) -> FastJSONResponse:
    try:
        rule = parse(body.expression)
    except RuleSyntaxError as exc:
        return FastJSONResponse({"valid": False, "error": exc.as_dict()})
    return FastJSONResponse(
        {"valid": True, "by": list(rule.by), "series": summary_of(rule), "functions": FUNCTIONS}
    )


@router.post("/alerts/rules", status_code=201, summary="Create an alert rule")
async def create_rule(request: Request, body: RuleIn) -> FastJSONResponse:
    alerting = _alerting(request)
    data = _rule_data(body, creating=True)

    def run() -> dict[str, Any]:
        now = time.time_ns()
        try:
            with alerting.write_engine.begin() as conn:
                rule_id = store.create_rule(conn, data, now)
                row = store.get_rule(conn, rule_id)
        except IntegrityError:
            raise ApiError(409, f"a rule named {data['name']!r} exists", "conflict") from None
        assert row is not None
        return store.rule_json(row)

    return FastJSONResponse(await anyio.to_thread.run_sync(run), status_code=201)


@router.get("/alerts/rules/{rule_id}", summary="One alert rule")
async def get_rule(request: Request, rule_id: int) -> FastJSONResponse:
    alerting = _alerting(request)

    def run() -> dict[str, Any]:
        with alerting.engine.read_engine.connect() as conn:
            row = store.get_rule(conn, rule_id)
        if row is None:
            raise ApiError(404, f"no rule {rule_id}")
        return store.rule_json(row)

    return FastJSONResponse(await anyio.to_thread.run_sync(run))


@router.patch("/alerts/rules/{rule_id}", summary="Change a rule (any fields; enabled to toggle)")
async def update_rule(request: Request, rule_id: int, body: RuleIn) -> FastJSONResponse:
    alerting = _alerting(request)
    data = _rule_data(body, creating=False)

    def run() -> dict[str, Any]:
        now = time.time_ns()
        try:
            with alerting.write_engine.begin() as conn:
                if data and not store.update_rule(conn, rule_id, data, now):
                    raise ApiError(404, f"no rule {rule_id}")
                row = store.get_rule(conn, rule_id)
        except IntegrityError:
            raise ApiError(409, f"a rule named {data.get('name')!r} exists", "conflict") from None
        if row is None:
            raise ApiError(404, f"no rule {rule_id}")
        return store.rule_json(row)

    return FastJSONResponse(await anyio.to_thread.run_sync(run))


@router.delete("/alerts/rules/{rule_id}", summary="Delete a rule (its alerts are resolved)")
async def delete_rule(request: Request, rule_id: int) -> FastJSONResponse:
    alerting = _alerting(request)

    def run() -> None:
        now = time.time_ns()
        with alerting.write_engine.begin() as conn:
            row = store.get_rule(conn, rule_id)
            if row is None:
                raise ApiError(404, f"no rule {rule_id}")
            rule = store.rule_def(row)
            channels = alerting.engine.routed_channels(conn)
            for alert in store.active_alerts(conn):
                if int(alert.rule_id) == rule_id:
                    _resolve(alerting, conn, alert, rule, channels, now, "rule deleted", None)
            store.delete_rule(conn, rule_id)
        alerting.engine.refresh_firing()

    await anyio.to_thread.run_sync(run)
    return FastJSONResponse({"deleted": rule_id})


# --- alerts --------------------------------------------------------------------------------------

StateName = Literal["pending", "firing", "resolved", "inactive"]
Severity = Literal["info", "warning", "error", "critical"]


@router.get("/alerts", summary="Alerts (filters: state, severity, agent, rule_id), newest first")
async def list_alerts(
    request: Request,
    state: Annotated[list[StateName] | None, Query()] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    agent: Annotated[str | None, Query(max_length=512)] = None,
    rule_id: int | None = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> FastJSONResponse:
    alerting = _alerting(request)
    before = _cursor(cursor)

    def run() -> list[dict[str, Any]]:
        with alerting.engine.read_engine.connect() as conn:
            rows = store.list_alerts(
                conn,
                states=state,
                severities=severity,
                agent=agent,
                rule_id=rule_id,
                before_id=before,
                limit=limit,
            )
        return [store.alert_json(r) for r in rows]

    return FastJSONResponse(_page(await anyio.to_thread.run_sync(run), limit))


@router.get("/alerts/summary", summary="Alert counts by state and severity")
async def alerts_summary(request: Request) -> FastJSONResponse:
    alerting = _alerting(request)

    def run() -> dict[str, Any]:
        with alerting.engine.read_engine.connect() as conn:
            return store.summary(conn)

    data = await anyio.to_thread.run_sync(run)
    data["engine"] = alerting.health()
    return FastJSONResponse(data)


@router.post("/alerts/evaluate", summary="Evaluate every rule now (one cycle) and report")
async def evaluate_now(request: Request) -> FastJSONResponse:
    alerting = _alerting(request)
    result = await anyio.to_thread.run_sync(alerting.evaluate_now)
    alerting.worker.wake.set()
    return FastJSONResponse(result.as_dict())


# --- channels ------------------------------------------------------------------------------------


class ChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    type: Literal["slack", "pagerduty", "webhook", "email"] | None = None
    config: dict[str, Any] | None = None
    severities: list[Severity] | None = None
    matchers: list[Any] | None = None
    enabled: bool | None = None


def _check_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    def url(key: str = "url", required: bool = True) -> None:
        value = config.get(key)
        if value is None and not required:
            return
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise ApiError(
                400, f"config.{key}: an http(s) URL is needed for {kind}", "invalid_parameter"
            )

    allowed = {
        "slack": {"url"},
        "pagerduty": {"routing_key", "url"},
        "webhook": {"url", "secret"},
        "email": {"host", "port", "username", "password", "starttls", "ssl", "from", "to"},
    }[kind]
    extra = set(config) - allowed
    if extra:
        raise ApiError(
            400,
            f"config: unknown for {kind}: {', '.join(sorted(extra))} "
            f"(known: {', '.join(sorted(allowed))})",
            "invalid_parameter",
        )
    if kind in ("slack", "webhook"):
        url()
    if kind == "pagerduty":
        key = config.get("routing_key")
        if not isinstance(key, str) or not 0 < len(key) <= 64:
            raise ApiError(
                400, "config.routing_key: the PagerDuty integration key", "invalid_parameter"
            )
        url(required=False)
    if kind == "email":
        to = config.get("to")
        if isinstance(to, str):
            config = {**config, "to": [to]}
            to = config["to"]
        if not isinstance(config.get("host"), str) or not config["host"]:
            raise ApiError(400, "config.host: the SMTP server", "invalid_parameter")
        if (
            not isinstance(to, list)
            or not to
            or not all(isinstance(a, str) and "@" in a for a in to)
        ):
            raise ApiError(400, "config.to: a list of e-mail addresses", "invalid_parameter")
        port = config.get("port", 25)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ApiError(400, "config.port: 1..65535", "invalid_parameter")
    return config


def _channel_data(body: ChannelIn, current_type: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    kind = body.type or current_type
    if current_type is None:
        missing = [n for n in ("name", "type", "config") if getattr(body, n) is None]
        if missing:
            raise ApiError(400, f"missing: {', '.join(missing)}", "invalid_parameter")
    changing = body.type is not None and current_type is not None and body.type != current_type
    if changing and body.config is None:
        raise ApiError(400, "changing the type needs a new config", "invalid_parameter")
    if body.name is not None:
        data["name"] = body.name.strip()
    if body.type is not None:
        data["type"] = body.type
    if body.config is not None:
        assert kind is not None
        data["config"] = _check_config(kind, dict(body.config))
    if body.severities is not None:
        data["severities"] = list(dict.fromkeys(body.severities))
    if body.matchers is not None:
        try:
            data["matchers"] = [
                m.as_dict() for m in parse_matchers(body.matchers, allow_empty=True)
            ]
        except ValueError as exc:
            raise ApiError(400, str(exc), "invalid_parameter") from None
    if body.enabled is not None:
        data["enabled"] = body.enabled
    return data


@router.get("/alerts/channels", summary="Notification channels (secrets masked)")
async def list_channels(request: Request) -> FastJSONResponse:
    alerting = _alerting(request)

    def run() -> list[dict[str, Any]]:
        with alerting.engine.read_engine.connect() as conn:
            return [store.channel_json(r) for r in store.list_channels(conn)]

    return FastJSONResponse({"items": await anyio.to_thread.run_sync(run), "types": CHANNEL_TYPES})


@router.post("/alerts/channels", status_code=201, summary="Add a notification channel")
async def create_channel(request: Request, body: ChannelIn) -> FastJSONResponse:
    alerting = _alerting(request)
    data = _channel_data(body, None)

    def run() -> dict[str, Any]:
        try:
            with alerting.write_engine.begin() as conn:
                cid = store.create_channel(conn, data, time.time_ns())
                row = store.get_channel(conn, cid)
        except IntegrityError:
            raise ApiError(409, f"a channel named {data['name']!r} exists", "conflict") from None
        assert row is not None
        return store.channel_json(row)

    return FastJSONResponse(await anyio.to_thread.run_sync(run), status_code=201)


@router.get("/alerts/channels/{channel_id}", summary="One channel")
async def get_channel(request: Request, channel_id: int) -> FastJSONResponse:
    alerting = _alerting(request)

    def run() -> dict[str, Any]:
        with alerting.engine.read_engine.connect() as conn:
            row = store.get_channel(conn, channel_id)
        if row is None:
            raise ApiError(404, f"no channel {channel_id}")
        return store.channel_json(row)

    return FastJSONResponse(await anyio.to_thread.run_sync(run))


@router.patch("/alerts/channels/{channel_id}", summary="Change a channel")
async def update_channel(request: Request, channel_id: int, body: ChannelIn) -> FastJSONResponse:
    alerting = _alerting(request)

    def run() -> dict[str, Any]:
        try:
            with alerting.write_engine.begin() as conn:
                row = store.get_channel(conn, channel_id)
                if row is None:
                    raise ApiError(404, f"no channel {channel_id}")
                data = _channel_data(body, row.type)
                if data:
                    store.update_channel(conn, channel_id, data, time.time_ns())
                row = store.get_channel(conn, channel_id)
        except IntegrityError:
            raise ApiError(409, f"a channel named {body.name!r} exists", "conflict") from None
        assert row is not None
        return store.channel_json(row)

    return FastJSONResponse(await anyio.to_thread.run_sync(run))


@router.delete("/alerts/channels/{channel_id}", summary="Delete a channel")
async def delete_channel(request: Request, channel_id: int) -> FastJSONResponse:
    alerting = _alerting(request)

    def run() -> None:
        with alerting.write_engine.begin() as conn:
            if not store.delete_channel(conn, channel_id):
                raise ApiError(404, f"no channel {channel_id}")

    await anyio.to_thread.run_sync(run)
    return FastJSONResponse({"deleted": channel_id})


@router.post("/alerts/channels/{channel_id}/test", summary="Queue a test notification")
async def test_channel(request: Request, channel_id: int) -> FastJSONResponse:
    alerting = _alerting(request)

    def run() -> dict[str, Any]:
        now = time.time_ns()
        with alerting.write_engine.begin() as conn:
            row = store.get_channel(conn, channel_id)
            if row is None:
                raise ApiError(404, f"no channel {channel_id}")
            key = f"test:{channel_id}:{now}"
            alert = {
                "id": 0,
                "rule_id": 0,
                "rule": "Pharos test notification",
                "fingerprint": f"pharos-test-{channel_id}",
                "labels": {"alertname": "Pharos test notification", "severity": "info"},
                "severity": "info",
                "state": "firing",
                "value": None,
                "message": f"A test of channel {row.name} from Pharos.",
                "expression": "",
                "fired_at": store.iso(now),
            }
            payload = {"event": "test", "at": store.iso(now), "alert": alert}
            store.enqueue(
                conn,
                key=key,
                channel_id=channel_id,
                alert_id=None,
                event="test",
                payload=payload,
                now_ns=now,
            )
        return {"queued": True, "idempotency_key": key}

    data = await anyio.to_thread.run_sync(run)
    alerting.worker.wake.set()
    return FastJSONResponse(data, status_code=202)


@router.get("/alerts/outbox", summary="Notifications and their delivery status, newest first")
async def list_outbox(
    request: Request,
    status: Literal["pending", "sent", "failed"] | None = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> FastJSONResponse:
    alerting = _alerting(request)
    before = _cursor(cursor)

    def run() -> dict[str, Any]:
        with alerting.engine.read_engine.connect() as conn:
            rows = store.list_outbox(conn, status=status, before_id=before, limit=limit)
            counts = store.outbox_counts(conn)
        return {**_page([store.outbox_json(r) for r in rows], limit), "counts": counts}

    return FastJSONResponse(await anyio.to_thread.run_sync(run))


# --- one alert -----------------------------------------------------------------------------------


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    who: str = Field(min_length=1, max_length=200)
    comment: str = Field(default="", max_length=2000)


@router.get("/alerts/{alert_id}", summary="One alert with its history")
async def get_alert(request: Request, alert_id: int) -> FastJSONResponse:
    alerting = _alerting(request)

    def run() -> dict[str, Any]:
        with alerting.engine.read_engine.connect() as conn:
            row = store.get_alert(conn, alert_id)
            if row is None:
                raise ApiError(404, f"no alert {alert_id}")
            rule = _rule_of(conn, row)
            out = store.alert_json(row, rule.expression if rule is not None else None)
            out["history"] = store.alert_history(conn, alert_id)
        return out

    return FastJSONResponse(await anyio.to_thread.run_sync(run))


def _rule_of(conn: Any, row: Any) -> RuleDef | None:
    """The rule of an alert: its ``alert_rules`` row, or a built-in budget alert's rule."""
    if budget_alerts.is_budget_rule(int(row.rule_id)):
        return budget_alerts.rule_of_alert(
            row.rule_name, store.loads(row.labels, {}), str(row.message or "")
        )
    rule_row = store.get_rule(conn, int(row.rule_id))
    return store.rule_def(rule_row) if rule_row is not None else None


def _snapshot(row: Any, rule: Any, state: str) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "rule_id": int(row.rule_id),
        "rule": row.rule_name,
        "fingerprint": row.fingerprint,
        "labels": store.loads(row.labels, {}),
        "severity": row.severity,
        "state": state,
        "value": row.value,
        "message": row.message,
        "expression": rule.expression if rule is not None else "",
        "fired_at": store.iso(row.fired_ns),
    }


def _resolve(
    alerting: Alerting,
    conn: Any,
    row: Any,
    rule: Any,
    channels: Any,
    now: int,
    who: str,
    comment: str | None,
) -> None:
    prev = state_of(row, silenced=row.silenced_by is not None)
    nxt, events = resolve_manually(prev, now)
    conn.execute(
        update(alerts)
        .where(alerts.c.id == row.id)
        .values(state=nxt.state, resolved_ns=now, pending_since_ns=None, updated_ns=now)
    )
    store.add_event(conn, int(row.id), now, "resolved", "resolved", row.value, who, comment)
    if "resolved" in events and rule is not None and row.silenced_by is None:
        snapshot = {**_snapshot(row, rule, "resolved"), "resolved_at": store.iso(now)}
        alerting.engine.notify(
            conn,
            rule,
            store.loads(row.labels, {}),
            snapshot,
            "resolved",
            f"a{row.id}:e{row.episode}:resolved",
            channels,
            now,
        )


@router.post("/alerts/{alert_id}/ack", summary="Acknowledge a firing alert (who, comment)")
async def ack_alert(request: Request, alert_id: int, body: ActionIn) -> FastJSONResponse:
    alerting = _alerting(request)

    def run() -> dict[str, Any]:
        now = time.time_ns()
        with alerting.write_engine.begin() as conn:
            row = store.get_alert(conn, alert_id)
            if row is None:
                raise ApiError(404, f"no alert {alert_id}")
            if row.state != "firing":
                raise ApiError(409, f"alert {alert_id} is {row.state}, not firing", "conflict")
            if row.acked_by is None:
                conn.execute(
                    update(alerts)
                    .where(alerts.c.id == alert_id)
                    .values(acked_by=body.who, acked_ns=now, ack_comment=body.comment or None)
                )
                store.add_event(
                    conn,
                    alert_id,
                    now,
                    "acknowledged",
                    row.state,
                    row.value,
                    body.who,
                    body.comment or None,
                )
                rule = _rule_of(conn, row)
                if rule is not None and row.silenced_by is None:
                    snapshot = {
                        **_snapshot(row, rule, "firing"),
                        "acked_by": body.who,
                        "ack_comment": body.comment or None,
                    }
                    alerting.engine.notify(
                        conn,
                        rule,
                        store.loads(row.labels, {}),
                        snapshot,
                        "acknowledged",
                        f"a{alert_id}:e{row.episode}:acknowledged",
                        alerting.engine.routed_channels(conn),
                        now,
                    )
            row = store.get_alert(conn, alert_id)
        assert row is not None
        return store.alert_json(row)

    data = await anyio.to_thread.run_sync(run)
    alerting.worker.wake.set()
    return FastJSONResponse(data)


@router.post("/alerts/{alert_id}/resolve", summary="Resolve an alert now (who, comment)")
async def resolve_alert(request: Request, alert_id: int, body: ActionIn) -> FastJSONResponse:
    alerting = _alerting(request)

    def run() -> dict[str, Any]:
        now = time.time_ns()
        with alerting.write_engine.begin() as conn:
            row = store.get_alert(conn, alert_id)
            if row is None:
                raise ApiError(404, f"no alert {alert_id}")
            if row.state not in ("pending", "firing"):
                raise ApiError(409, f"alert {alert_id} is {row.state} already", "conflict")
            rule = _rule_of(conn, row)
            channels = alerting.engine.routed_channels(conn)
            _resolve(alerting, conn, row, rule, channels, now, body.who, body.comment or None)
            row = store.get_alert(conn, alert_id)
        alerting.engine.refresh_firing()
        assert row is not None
        return store.alert_json(row)

    data = await anyio.to_thread.run_sync(run)
    alerting.worker.wake.set()
    return FastJSONResponse(data)


# --- silences ------------------------------------------------------------------------------------


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matchers: list[Any]
    starts_at: str | None = Field(default=None, description="ISO 8601; default now")
    ends_at: str | None = Field(default=None, description="ISO 8601; or give duration")
    duration: str | None = Field(default=None, description="e.g. 2h (from starts_at)")
    created_by: str = Field(min_length=1, max_length=200)
    comment: str = Field(min_length=1, max_length=2000)


@router.get("/silences", summary="Silences (active and pending; expired with include_expired)")
async def list_silences(
    request: Request,
    include_expired: bool = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> FastJSONResponse:
    alerting = _alerting(request)

    def run() -> list[dict[str, Any]]:
        now = time.time_ns()
        with alerting.engine.read_engine.connect() as conn:
            rows = store.list_silences(conn, now, include_expired=include_expired, limit=limit)
        return [store.silence_json(r, now) for r in rows]

    return FastJSONResponse({"items": await anyio.to_thread.run_sync(run)})


@router.post("/silences", status_code=201, summary="Mute notifications of matching alerts")
async def create_silence(request: Request, body: SilenceIn) -> FastJSONResponse:
    alerting = _alerting(request)
    now = time.time_ns()
    try:
        matchers = parse_matchers(body.matchers)
    except ValueError as exc:
        raise ApiError(400, f"matchers: {exc}", "invalid_parameter") from None
    try:
        starts = parse_instant_ns(body.starts_at, now) if body.starts_at else now
        if body.ends_at and body.duration:
            raise ApiError(400, "give ends_at or duration, not both", "invalid_parameter")
        if body.ends_at:
            ends = parse_instant_ns(body.ends_at, now)
        elif body.duration:
            ends = starts + int(parse_duration_seconds(body.duration) * NS)
        else:
            raise ApiError(400, "ends_at or duration is needed", "invalid_parameter")
    except ValueError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from None
    if ends <= max(starts, now):
        raise ApiError(
            400, "the silence must end after it starts and in the future", "invalid_parameter"
        )

    def run() -> dict[str, Any]:
        with alerting.write_engine.begin() as conn:
            sid = store.create_silence(
                conn, matchers, starts, ends, body.created_by, body.comment, now
            )
            rows = store.list_silences(conn, now, include_expired=True, limit=MAX_PAGE)
        row = next(r for r in rows if int(r.id) == sid)
        return store.silence_json(row, now)

    return FastJSONResponse(await anyio.to_thread.run_sync(run), status_code=201)


@router.delete("/silences/{silence_id}", summary="Expire a silence now")
async def expire_silence(request: Request, silence_id: int) -> FastJSONResponse:
    alerting = _alerting(request)

    def run() -> dict[str, Any]:
        now = time.time_ns()
        with alerting.write_engine.begin() as conn:
            row = store.expire_silence(conn, silence_id, now)
        if row is None:
            raise ApiError(404, f"no silence {silence_id}")
        return store.silence_json(row, now)

    return FastJSONResponse(await anyio.to_thread.run_sync(run))
