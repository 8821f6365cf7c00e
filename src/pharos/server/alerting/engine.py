"""The alert engine: every ``alert_eval_interval_seconds`` the instance holding the lease reads
the rollups (once per table for all windows), evaluates every enabled rule for all its label
groups at once (``figures``), steps each alert's state machine and writes the changes, their
history and their notifications (the outbox) in one transaction. ``run_cycle(now_ns)`` is one
such cycle, callable directly.
"""

from __future__ import annotations

import heapq
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, bindparam, insert, update

from pharos.server.alerting import budget_alerts, store
from pharos.server.alerting.figures import Figures, HistogramCache, cut_windows, read_plan
from pharos.server.alerting.language import (
    ANOMALY_HISTORY,
    SLO_FUNCS,
    Budget,
    ColumnCompiled,
    Rule,
    RuleSyntaxError,
    Series,
    compile_columns,
    parse,
)
from pharos.server.alerting.rules import (
    DEFAULT_RULES,
    RuleDef,
    alert_labels,
    fingerprint,
    message_for,
)
from pharos.server.alerting.silences import ActiveSilence, match_all, parse_matchers, silenced_by
from pharos.server.alerting.state import NOTIFYING, NS, AlertState, Timing, quiet, step
from pharos.server.analytics import store as rollup_store
from pharos.server.analytics.summary import RollupRow
from pharos.server.cost.budgets import all_statuses, burn_of
from pharos.server.db.schema import alert_events, alerts
from pharos.server.slo import store as slo_store

log = logging.getLogger("pharos.alerting")
LEADER_LEASE = "alert-engine"
DEFAULTS_FLAG = "default-rules-created"
KNOWN_AGENT_DAYS = 7
REFRESH_NS = 60 * NS  # how stale an active alert's stored value may get
REFRESH_BATCH = 2000  # at most this many value refreshes per cycle (the rest: next cycles)
TRACE_WINDOW_MAX_S = 86400  # how far back a notification's trace link looks, at most
BUDGET_TRACE_WINDOW_S = 3600  # a budget alert links the costliest trace of the last hour
_Identity = tuple[str, dict[str, str]]  # an alert's fingerprint and labels


@dataclass(slots=True)
class CycleResult:
    now_ns: int
    rules: int = 0
    budgets: int = 0
    groups: int = 0
    windows: int = 0
    rollup_rows: int = 0
    transitions: int = 0
    notifications: int = 0
    errors: list[str] = field(default_factory=list)
    read_seconds: float = 0.0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "evaluated_at": store.iso(self.now_ns),
            "rules": self.rules,
            "budgets": self.budgets,
            "groups": self.groups,
            "windows": self.windows,
            "rollup_rows": self.rollup_rows,
            "transitions": self.transitions,
            "notifications": self.notifications,
            "errors": self.errors,
            "read_seconds": round(self.read_seconds, 4),
            "seconds": round(self.seconds, 4),
        }


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A rule's expression parsed and compiled once (cached by its text)."""

    rule: Rule
    condition: ColumnCompiled  # over every group at once
    primary: ColumnCompiled | None  # the value an alert shows
    series: tuple[Series, ...]
    windows: frozenset[int]
    uses_budget: bool
    named_agent: str | None  # Rule.named_agent


@dataclass(slots=True)
class _Change:
    """What one alert's evaluation changes (``_plan``), to write with the cycle's others."""

    rule: RuleDef
    labels: dict[str, str]
    fp: str
    row: Any
    prev: AlertState
    nxt: AlertState
    events: list[str]
    episode: int
    silence_id: int | None
    silence_changed: bool
    message: str
    write: store.AlertWrite


@dataclass(slots=True)
class _Channel:
    id: int
    name: str
    severities: tuple[str, ...]
    matchers: tuple[Any, ...]


_SEVERITY_RANK = {"critical": 0, "error": 1, "warning": 2, "info": 3}


class FiringIndex:
    """Firing alerts by agent and severity, kept in memory for the health score, the overview
    and /metrics (refreshed after every cycle and every ack/resolve, on every instance)."""

    MAX_ITEMS = 20

    def __init__(self) -> None:
        self.total = 0
        self.by_agent: dict[str, int] = {}
        self.by_severity: dict[str, int] = {}
        self.items: list[dict[str, Any]] = []
        #: Firing alerts above ``info`` (in all, by agent): what the health score counts.
        self.serious = 0
        self.serious_by_agent: dict[str, int] = {}

    def load(
        self, snapshot: list[Any], labels_of: Callable[[Any], dict[str, str]] | None = None
    ) -> None:
        """Count ``snapshot`` (firing rows); ``labels_of``: a row's parsed labels, if known."""
        by_agent: dict[str, int] = {}
        by_severity: dict[str, int] = {}
        serious_by_agent: dict[str, int] = {}
        items = []
        for row in snapshot:
            by_severity[row.severity] = by_severity.get(row.severity, 0) + 1
            labels = labels_of(row) if labels_of is not None else store.loads(row.labels, {})
            agent = labels.get("agent")
            if agent:
                by_agent[agent] = by_agent.get(agent, 0) + 1
                if row.severity != "info":
                    serious_by_agent[agent] = serious_by_agent.get(agent, 0) + 1
            items.append((_SEVERITY_RANK.get(row.severity, 9), -(row.fired_ns or 0), row, labels))
        top = heapq.nsmallest(self.MAX_ITEMS, items, key=lambda t: (t[0], t[1], t[2].id))
        self.items = [
            {
                "id": int(row.id),
                "rule": row.rule_name,
                "severity": row.severity,
                "agent": labels.get("agent"),
                "labels": labels,
                "value": row.value,
                "message": row.message,
                "fired_at": store.iso(row.fired_ns),
                "acknowledged": row.acked_by is not None,
                "silenced": row.silenced_by is not None,
            }
            for _, _, row, labels in top
        ]
        self.total, self.by_agent, self.by_severity = len(snapshot), by_agent, by_severity
        self.serious = len(snapshot) - by_severity.get("info", 0)
        self.serious_by_agent = serious_by_agent

    def __call__(self, agent: str | None = None) -> int:
        return self.total if agent is None else self.by_agent.get(agent, 0)

    def for_health(self, agent: str | None = None) -> int:
        """Firing alerts the health score counts: ``info`` alerts inform, they do not degrade."""
        return self.serious if agent is None else self.serious_by_agent.get(agent, 0)


class AlertEngine:
    """Evaluates rules and writes transitions + outbox rows. Thread-safe to call from one
    thread at a time (the lifespan loop, or the evaluate-now route under ``lock``)."""

    def __init__(
        self,
        read_engine: Engine,
        write_engine: Engine,
        *,
        dashboard_url: str = "",
        instance_id: str | None = None,
    ) -> None:
        self.read_engine = read_engine
        self.write_engine = write_engine
        self.dashboard_url = dashboard_url.rstrip("/")
        self.instance_id = instance_id or f"pharos-{uuid.uuid4().hex[:12]}"
        self.firing = FiringIndex()
        self._parsed: dict[str, _Parsed] = {}
        self.last_result: CycleResult | None = None
        self._last_true: dict[tuple[int, str], int] = {}
        #: (fingerprint, labels) by rule (id, name, severity, labels), then by group values
        self._fingerprints: dict[tuple[Any, ...], dict[tuple[str, ...], _Identity]] = {}
        self._fingerprint_count = 0
        self._histograms = HistogramCache()  # latency histograms merged last cycle
        self._active = store.ActiveAlerts()  # pending/firing alerts, checked every cycle
        self._refresh: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []
        #: trace links found this cycle: (agent, since, prefer) -> trace id (a storm of firing
        #: alerts of one agent asks once)
        self._traces: dict[tuple[str | None, int, str], str | None] = {}
        self.cycles = 0
        self.failures = 0
        self.last_error: str | None = None

    # -- setup -------------------------------------------------------------------------------
    def create_default_rules(self, now_ns: int) -> bool:
        """The default rule set, once per database (deleted rules stay deleted)."""
        with self.write_engine.begin() as conn:
            if not store.set_flag_once(conn, DEFAULTS_FLAG, now_ns):
                return False
            existing = {r.name for r in store.list_rules(conn)}
            for rule in DEFAULT_RULES:
                if rule["name"] not in existing:
                    store.create_rule(conn, rule, now_ns)
        return True

    def sync_channels(
        self, configured: list[dict[str, Any]], now_ns: int, managed: tuple[str, ...] = ()
    ) -> list[str]:
        """Create or refresh (and enable) the ``configured`` channels by name, and disable the
        ``managed`` ones that are not configured any more. Returns the names disabled."""
        names = {c["name"] for c in configured}
        disabled = []
        with self.write_engine.begin() as conn:
            for channel in configured:
                store.upsert_channel(conn, {**channel, "enabled": True}, now_ns)
            for row in store.list_channels(conn, enabled_only=True):
                if row.name in managed and row.name not in names:
                    store.update_channel(conn, int(row.id), {"enabled": False}, now_ns)
                    disabled.append(str(row.name))
        return disabled

    # -- leadership --------------------------------------------------------------------------
    def lead(self, now_ns: int, ttl_ns: int) -> bool:
        with self.write_engine.connect() as conn:
            return store.try_lease(conn, LEADER_LEASE, self.instance_id, now_ns, ttl_ns)

    def step_down(self) -> None:
        with self.write_engine.begin() as conn:
            store.drop_lease(conn, LEADER_LEASE, self.instance_id)

    def refresh_firing(self) -> None:
        with self.read_engine.connect() as conn:
            self.firing.load(store.firing_snapshot(conn))

    # -- one cycle ---------------------------------------------------------------------------
    def _rule(self, expression: str) -> _Parsed:
        entry = self._parsed.get(expression)
        if entry is None:
            if len(self._parsed) > 10000:
                self._parsed.clear()
            rule = parse(expression)
            primary = rule.primary
            series = tuple(rule.series)
            entry = _Parsed(
                rule,
                compile_columns(rule.expr),
                compile_columns(primary) if primary is not None else None,
                series,
                frozenset(s.window_s for s in series),
                _uses_budget(rule),
                rule.named_agent,
            )
            self._parsed[expression] = entry
        return entry

    def _identity(
        self, rule: RuleDef, group: Mapping[str, str], named_agent: str | None
    ) -> _Identity:
        """An alert's fingerprint and labels (cached: read-only)."""
        self._fingerprint_count += 1
        labels = alert_labels(rule, group, named_agent)
        return fingerprint(rule.id, labels), labels

    def run_cycle(self, now_ns: int | None = None) -> CycleResult:
        """Evaluate every enabled rule at ``now_ns`` (default: now) and persist the outcome."""
        started = time.perf_counter()
        if self._fingerprint_count > 500_000:
            self._fingerprints.clear()
            self._fingerprint_count = 0
        now_ns = time.time_ns() if now_ns is None else now_ns
        result = CycleResult(now_ns)
        self._traces = {}
        end_s = (now_ns // NS // 60 + 1) * 60  # the end of the current minute, as dashboards
        with self.read_engine.connect() as conn:
            all_rules = {int(r.id): store.rule_def(r) for r in store.list_rules(conn)}
            parsed: list[tuple[RuleDef, Rule]] = []
            compiled: dict[int, _Parsed] = {}
            for rule in all_rules.values():
                if not rule.enabled:
                    continue
                try:
                    entry = self._rule(rule.expression)
                    parsed.append((rule, entry.rule))
                    compiled[rule.id] = entry
                except RuleSyntaxError as exc:  # stored before a language change
                    result.errors.append(f"rule {rule.id} ({rule.name}): {exc}")
            all_series = {s for e in compiled.values() for s in e.series}
            windows = sorted({s.window_s for s in all_series})
            read_started = time.perf_counter()
            # One read per table for all the windows (the short ones are the long ones' ends).
            blocks = {
                (name, lo, hi): store.rollup_tuples(conn, name, lo, hi)
                for name, lo, hi in read_plan(windows, end_s)
            }
            rows_by_window = cut_windows(blocks, windows, end_s)
            history_windows = sorted({s.window_s for s in all_series if s.anomaly})
            history: dict[int, list[RollupRow]] = {
                w: rollup_store.fetch_rollups(
                    conn,
                    end_s - (ANOMALY_HISTORY + 1) * w,
                    end_s - w,
                    resolution="1m",
                )
                for w in history_windows
            }
            agents = (
                rollup_store.known_agents(conn, end_s - KNOWN_AGENT_DAYS * 86400)
                if any(r.by == ("agent",) for _, r in parsed)
                else []
            )
            result.read_seconds = time.perf_counter() - read_started
            # Every budget (cost API + agent registry): the built-in budget alerts and the
            # language's budget_burn()/budget_forecast_burn().
            budget_states = all_statuses(conn, datetime.fromtimestamp(now_ns / NS, tz=UTC))
            slo_defs = (
                slo_store.list_defs(conn) if any(s.metric in SLO_FUNCS for s in all_series) else []
            )
            silences = store.active_silences(conn, now_ns)
            channels = _channels(conn)
            existing: dict[tuple[int, str], Any] = self._active.sync(conn)
        result.rules, result.windows = len(parsed), len(windows)
        result.budgets = len(budget_states)
        burns: dict[tuple[str | None, bool], float | None] = {}

        def burn(agent: str | None, forecast: bool) -> float | None:
            key = (agent, forecast)
            if key not in burns:
                burns[key] = burn_of(budget_states, agent, forecast=forecast)
            return burns[key]

        result.rollup_rows = sum(len(v) for v in blocks.values())
        figures = Figures(
            rows_by_window,
            history,
            end_s,
            slos=slo_defs,
            cache=self._histograms,
            budget=burn,
        )

        # Evaluate (pure): which (rule, labels) hold now, with their value. Each rule runs over
        # all its groups at once, on the columns of figures every rule with those groups shares.
        evaluated: dict[tuple[int, str], tuple[RuleDef, dict[str, str], bool, float | None]] = {}
        alerting_rules = {rule_id for rule_id, _ in existing}
        for rule, ast in parsed:
            entry = compiled[rule.id]
            condition, primary = entry.condition, entry.primary
            columns = figures.columns(ast.by, entry.windows, agents)
            n = len(columns)
            result.groups += n
            named_agent = entry.named_agent if "agent" not in ast.by else None
            signature = (
                rule.id,
                rule.name,
                rule.severity,
                tuple(sorted(rule.labels.items())),
                named_agent,
            )
            fingerprints = self._fingerprints.setdefault(signature, {})
            has_alerts = rule.id in alerting_rules
            try:
                holds = condition(columns.series, columns.budget, n)
                values: Sequence[float | None] | None = None
                for i, active in enumerate(holds):
                    if not active and not has_alerts:
                        continue
                    identity = fingerprints.get(columns.keys[i])
                    if identity is None:
                        identity = self._identity(rule, columns.groups[i], named_agent)
                        fingerprints[columns.keys[i]] = identity
                    fp, labels = identity
                    key = (rule.id, fp)
                    if not active and key not in existing:
                        continue
                    if values is None:
                        values = (
                            primary(columns.series, columns.budget, n)
                            if primary is not None
                            else [None] * n
                        )
                    value = values[i]
                    number = None if isinstance(value, bool) or value is None else float(value)
                    evaluated[key] = (rule, labels, bool(active), number)
            except Exception as exc:  # a bug, not the user's: keep the other rules going
                result.errors.append(f"rule {rule.id} ({rule.name}): {exc!r}")
        figures.keep()
        # The built-in budget alerts (alerting/budget_alerts.py).
        for ba in budget_alerts.evaluate(
            budget_states, lambda fp: (budget_alerts.BUDGET_RULE_ID, fp) in existing
        ):
            key = (budget_alerts.BUDGET_RULE_ID, ba.fingerprint)
            if ba.active or key in existing:
                evaluated[key] = (ba.rule, ba.labels, ba.active, ba.value)
        # Alerts whose group vanished from the result (the agent went away) count as false;
        # those of a disabled rule resolve now (keep_firing_for does not apply).
        rules_by_id = {rule.id: rule for rule, _ in parsed}
        for key, row in existing.items():
            if key in evaluated:
                continue
            found = rules_by_id.get(key[0])
            labels = store.loads(row.labels, {})
            if found is None and key[0] in all_rules:
                found = replace(all_rules[key[0]], keep_firing_for_s=0)
            if found is None and budget_alerts.is_budget_rule(key[0]):  # the budget went away
                found = budget_alerts.rule_of_alert(row.rule_name, labels, row.message)
            if found is not None:
                evaluated[key] = (found, labels, False, None)

        missing = [k for k, (_, _, active, _) in evaluated.items() if k not in existing]
        if missing:
            with self.read_engine.connect() as conn:
                for row in store.alerts_by_fingerprint(conn, missing):
                    existing[(int(row.rule_id), row.fingerprint)] = row

        self._events, self._refresh = [], []
        timings: dict[int, Timing] = {}
        changes: list[_Change] = []
        for key, (rule, labels, active, value) in evaluated.items():
            timing = timings.get(rule.id)
            if timing is None:
                timing = timings[rule.id] = rule.timing
            change = self._plan(
                rule, labels, key[1], existing.get(key), active, value, now_ns, silences, timing
            )
            if change is not None:
                changes.append(change)
        with self.write_engine.begin() as conn:
            # All the changes at once (each keeps its optimistic check), then the history and
            # the notifications of those that held, in the same transaction.
            writes = [c.write for c in changes]
            ids = store.save_alerts(conn, writes)
            queued: list[dict[str, Any]] = []
            for change, alert_id in zip(changes, ids, strict=True):
                if alert_id is not None:
                    result.transitions += self._record(
                        conn, change, alert_id, channels, now_ns, queued
                    )
            result.notifications += store.enqueue_many(conn, queued)
            if self._events:
                conn.execute(insert(alert_events), self._events)
                self._events = []
            refreshed = self._refresh
            if self._refresh:
                conn.execute(
                    update(alerts)
                    .where(
                        alerts.c.id == bindparam("b_id"),
                        alerts.c.updated_ns == bindparam("b_updated"),
                    )
                    .values(
                        value=bindparam("value"),
                        message=bindparam("message"),
                        last_true_ns=bindparam("last_true_ns"),
                        last_eval_ns=bindparam("last_eval_ns"),
                    ),
                    self._refresh,
                )
                self._refresh = []
        self._active.written(zip(writes, ids, (c.row for c in changes), strict=True))
        self._active.refreshed(refreshed)
        with self.read_engine.connect() as conn:  # and what others wrote meanwhile (acks ...)
            self._active.sync(conn, keyed=False)
        self.firing.load(self._active.firing(), self._active.labels)
        result.seconds = time.perf_counter() - started
        self.last_result = result
        self.cycles += 1
        return result

    def _plan(
        self,
        rule: RuleDef,
        labels: dict[str, str],
        fp: str,
        row: Any,
        active: bool,
        value: float | None,
        now_ns: int,
        silences: list[ActiveSilence],
        timing: Timing,
    ) -> _Change | None:
        """Step one alert's state machine: the change to write, or None (a quiet alert only
        gets its shown value refreshed now and then, queued in ``_refresh``)."""
        silence_id = silenced_by(labels, silences, now_ns)
        key = (rule.id, fp)
        if active:
            self._last_true[key] = now_ns
        last_true = self._last_true.get(key)
        if row is not None and row.silenced_by == silence_id:
            stored = row.last_true_ns
            if last_true is None or (stored is not None and stored > last_true):
                last_true = stored
            if quiet(
                row.state,
                active,
                now_ns,
                timing,
                pending_since_ns=row.pending_since_ns,
                last_true_ns=last_true,
                last_notified_ns=row.last_notified_ns,
                acked=row.acked_by is not None,
                silenced=silence_id is not None,
            ):
                if (
                    row.state != "inactive"
                    and now_ns - int(row.last_eval_ns) >= REFRESH_NS
                    and len(self._refresh) < REFRESH_BATCH
                ):
                    shown = value if value is not None else row.value
                    self._refresh.append(
                        {
                            "b_id": int(row.id),
                            "b_updated": row.updated_ns,
                            "value": shown,
                            "message": message_for(rule, labels, shown),
                            "last_true_ns": last_true,
                            "last_eval_ns": now_ns,
                        }
                    )
                return None
        prev = state_of(row, silenced=silence_id is not None, last_true_ns=last_true)
        nxt, events = step(prev, active, now_ns, timing, value)
        episode = int(row.episode) if row is not None else 0
        if "pending" in events:
            episode += 1
        prev_silence = row.silenced_by if row is not None else None
        silence_changed = row is not None and nxt.state == "firing" and prev_silence != silence_id
        if not events and not silence_changed:
            return None
        if nxt.state in ("inactive", "resolved"):
            self._last_true.pop(key, None)
        message = message_for(rule, labels, value if value is not None else nxt.value)
        values: dict[str, Any] = {
            "state": nxt.state,
            "value": nxt.value,
            "message": message,
            "episode": episode,
            "pending_since_ns": nxt.pending_since_ns,
            "fired_ns": nxt.fired_ns,
            "last_true_ns": nxt.last_true_ns,
            "resolved_ns": nxt.resolved_ns,
            "last_notified_ns": nxt.last_notified_ns,
            "silenced_by": silence_id if nxt.state == "firing" else None,
            "severity": rule.severity,
            "rule_name": rule.name,
            "last_eval_ns": now_ns,
            "updated_ns": now_ns,
        }
        if "pending" in events:  # a new episode starts un-acknowledged
            values.update(acked_by=None, acked_ns=None, ack_comment=None)
        if row is None:
            write = store.AlertWrite(
                None,
                None,
                {"rule_id": rule.id, "fingerprint": fp, "labels": store.dumps(labels), **values},
            )
        else:
            # Optimistic: an operator's resolve since we read wins; we retry next cycle.
            write = store.AlertWrite(int(row.id), row.updated_ns, values)
        return _Change(
            rule,
            labels,
            fp,
            row,
            prev,
            nxt,
            events,
            episode,
            silence_id,
            silence_changed,
            message,
            write,
        )

    def _record(
        self,
        conn: Connection,
        change: _Change,
        alert_id: int,
        channels: list[_Channel],
        now_ns: int,
        queued: list[dict[str, Any]],
    ) -> int:
        """The history of a change that was written (into ``_events``) and its notifications
        (into ``queued``); returns the number of transitions."""
        rule, labels, row = change.rule, change.labels, change.row
        nxt, events, silence_id = change.nxt, change.events, change.silence_id
        for event in events:
            self._events.append(_event(alert_id, now_ns, event, nxt.state, nxt.value))
        if change.silence_changed:
            self._events.append(
                _event(
                    alert_id,
                    now_ns,
                    "silenced" if silence_id is not None else "unsilenced",
                    nxt.state,
                    nxt.value,
                    f"silence {silence_id}" if silence_id is not None else None,
                )
            )
        acked = row is not None and row.acked_by is not None and "pending" not in events
        for event in events:
            if event not in NOTIFYING or silence_id is not None:
                continue
            if event == "repeat" and change.prev.last_notified_ns is None:
                event = "firing"  # first notification of an episode that was silenced
            snapshot = {
                "id": alert_id,
                "rule_id": rule.id,
                "rule": rule.name,
                "fingerprint": change.fp,
                "labels": labels,
                "severity": rule.severity,
                "state": nxt.state,
                "value": nxt.value,
                "message": change.message,
                "expression": rule.expression,
                "fired_at": store.iso(nxt.fired_ns),
                "resolved_at": store.iso(nxt.resolved_ns),
                "acked_by": row.acked_by if acked and row is not None else None,
                "ack_comment": row.ack_comment if acked and row is not None else None,
            }
            tag = f"{event}@{now_ns}" if event == "repeat" else event
            self.notify(
                conn,
                rule,
                labels,
                snapshot,
                event,
                f"a{alert_id}:e{change.episode}:{tag}",
                channels,
                now_ns,
                queued,
            )
        return len(events)

    def notify(
        self,
        conn: Connection,
        rule: RuleDef,
        labels: Mapping[str, str],
        snapshot: dict[str, Any],
        event: str,
        key_prefix: str,
        channels: list[_Channel],
        now_ns: int,
        queued: list[dict[str, Any]] | None = None,
    ) -> int:
        """Write one outbox row per routed channel (in the caller's transaction); returns how
        many. With ``queued``, add the rows to it instead (for ``store.enqueue_many``)."""
        routed = route(rule, labels, channels)
        if not routed:
            return 0
        trace_id = None
        if self.dashboard_url and event in ("firing", "repeat"):
            trace_id = self.trace_for(rule, labels, now_ns)
        snapshot = {**snapshot, **self.links(snapshot["id"], labels, trace_id)}
        payload = {"event": event, "at": store.iso(now_ns), "alert": snapshot}
        rows = [
            store.outbox_row(
                key=f"{key_prefix}:c{channel.id}",
                channel_id=channel.id,
                alert_id=snapshot["id"],
                event=event,
                payload=payload,
                now_ns=now_ns,
            )
            for channel in routed
        ]
        if queued is not None:
            queued.extend(rows)
            return len(rows)
        return store.enqueue_many(conn, rows)

    def links(
        self, alert_id: int, labels: Mapping[str, str], trace_id: str | None = None
    ) -> dict[str, str]:
        """Dashboard links of a notification: the alert (``/alerts/{id}``), its agent
        (``/agents/{name}``, URL-encoded) and a trace (``/traces/{trace_id}``)."""
        if not self.dashboard_url:
            return {}
        out = {"url": f"{self.dashboard_url}/alerts/{alert_id}"}
        if labels.get("agent"):
            out["agent_url"] = f"{self.dashboard_url}/agents/{quote(labels['agent'], safe='')}"
        if trace_id:
            out["trace_url"] = f"{self.dashboard_url}/traces/{trace_id}"
        return out

    def trace_for(self, rule: RuleDef, labels: Mapping[str, str], now_ns: int) -> str | None:
        """A trace that shows what the alert is about, of its agent (all agents without one)
        in the rule's window (at most a day): the slowest for a latency rule, the costliest
        for a cost/token rule or a budget alert (the last hour), else the most recent failing
        one, or the slowest when none failed. None when there is no trace (or on an error:
        a link is not worth a notification)."""
        prefer, window_s = "failing", 0
        if budget_alerts.is_budget_rule(rule.id):
            prefer, window_s = "costliest", BUDGET_TRACE_WINDOW_S
        else:
            try:
                entry = self._rule(rule.expression)
            except RuleSyntaxError:
                return None
            metrics = {s.metric for s in entry.series}
            window_s = max((s.window_s for s in entry.series), default=BUDGET_TRACE_WINDOW_S)
            if any(m.startswith("latency_") for m in metrics):
                prefer = "slowest"
            elif metrics & COST_METRICS or entry.uses_budget:
                prefer = "costliest"
        since_ns = now_ns - min(window_s, TRACE_WINDOW_MAX_S) * NS
        key = (labels.get("agent"), since_ns, prefer)
        if key in self._traces:
            return self._traces[key]
        try:
            with self.read_engine.connect() as conn:
                found = store.trace_for_alert(conn, key[0], since_ns, now_ns, prefer)
        except Exception:
            log.warning("could not find a trace for a notification", exc_info=True)
            return None
        if len(self._traces) < 10_000:
            self._traces[key] = found
        return found

    def routed_channels(self, conn: Connection) -> list[_Channel]:
        return _channels(conn)


def _event(
    alert_id: int,
    at_ns: int,
    event: str,
    state: str,
    value: float | None,
    comment: str | None = None,
) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "at_ns": at_ns,
        "event": event,
        "state": state,
        "value": value,
        "who": None,
        "comment": comment,
    }


def route(rule: RuleDef, labels: Mapping[str, str], channels: list[_Channel]) -> list[_Channel]:
    """The channels an alert notifies: those the rule names, and those whose routing (severities
    + label matchers) matches it."""
    out = []
    for ch in channels:
        named = ch.name in rule.channels
        routed = bool(ch.severities) and rule.severity in ch.severities
        if named or (routed and match_all(ch.matchers, labels)):
            out.append(ch)
    return out


def _channels(conn: Connection) -> list[_Channel]:
    out = []
    for row in store.list_channels(conn, enabled_only=True):
        matchers = tuple(parse_matchers(store.loads(row.matchers, []), allow_empty=True))
        severities = tuple(store.loads(row.severities, []))
        out.append(_Channel(int(row.id), row.name, severities, matchers))
    return out


def state_of(row: Any, *, silenced: bool, last_true_ns: int | None = None) -> AlertState:
    if row is None:
        return AlertState(silenced=silenced)
    stored = row.last_true_ns
    if last_true_ns is not None and (stored is None or last_true_ns > stored):
        stored = last_true_ns
    return AlertState(
        state=row.state,
        pending_since_ns=row.pending_since_ns,
        fired_ns=row.fired_ns,
        last_true_ns=stored,
        resolved_ns=row.resolved_ns,
        last_notified_ns=row.last_notified_ns,
        acked=row.acked_by is not None,
        silenced=silenced,
        value=row.value,
    )


COST_METRICS = frozenset({"cost", "tokens", "input_tokens", "output_tokens", "cached_tokens"})


def _uses_budget(rule: Rule) -> bool:
    stack: list[Any] = [rule.expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Budget):
            return True
        for name in ("left", "right", "operand"):
            child = getattr(node, name, None)
            if child is not None:
                stack.append(child)
        stack.extend(getattr(node, "args", ()))
    return False
