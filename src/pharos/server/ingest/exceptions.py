"""Error tracking (pure): occurrences from span exception events and ERROR logs, and how a
group's row changes when new occurrences arrive (DESIGN §3).

An **occurrence** is one exception: a span event named ``exception`` (its ``exception.type``,
``.message`` and ``.stacktrace`` attributes) or a log of severity ERROR or worse (its
``exception.*`` attributes, else its body as the message). Occurrences are grouped by
:func:`~pharos.server.ingest.fingerprint.fingerprint` (type + normalised message).

A group's state (:class:`GroupState`) is folded with new occurrences by :func:`merge_group`:
counts and first/last seen, the latest message and stack trace, the agents affected, the most
recent traces, and the **regression** rule: a resolved group that gets an occurrence dated after
its resolution re-opens, with ``regressed_at_ns`` the time of the first such occurrence.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from pharos.server.ingest.fingerprint import fingerprint_normalized, normalize_message

if TYPE_CHECKING:
    from pharos.server.ingest.logs import LogRecord
    from pharos.server.ingest.normalize import SpanRecord

OPEN, RESOLVED = "open", "resolved"
SPAN, LOG = "span", "log"
#: Agents remembered per group, and traces in its "recent traces".
MAX_AGENTS = 50
MAX_RECENT_TRACES = 20
#: Longest message kept as a group's sample, and longest stack trace.
MAX_SAMPLE_CHARS = 4096
MAX_STACK_CHARS = 32 * 1024
BUCKET_SECONDS = 60


@dataclass(frozen=True, slots=True)
class ErrorOccurrence:
    fingerprint: str
    exc_type: str | None
    message: str  # normalised: what defines the group
    sample_message: str | None  # as sent
    stacktrace: str | None
    source: str  # span | log
    time_ns: int
    agent: str
    trace_id: str | None


def occurrence(
    exc_type: str | None,
    message: str | None,
    stacktrace: str | None,
    *,
    source: str,
    time_ns: int,
    agent: str,
    trace_id: str | None,
    group_key: str | None = None,
) -> ErrorOccurrence:
    """An occurrence; ``group_key`` stands for the type in the fingerprint when there is no
    type (an ERROR log without ``exception.type`` is grouped under ``log:<level>``)."""
    exc_type = exc_type.strip()[:256] if exc_type and exc_type.strip() else None
    normalized = normalize_message(message)
    return ErrorOccurrence(
        fingerprint=fingerprint_normalized(exc_type or group_key, normalized),
        exc_type=exc_type,
        message=normalized,
        sample_message=message[:MAX_SAMPLE_CHARS] if message else None,
        stacktrace=stacktrace[:MAX_STACK_CHARS] if stacktrace else None,
        source=source,
        time_ns=time_ns,
        agent=agent,
        trace_id=trace_id,
    )


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def span_occurrences(spans: Iterable[SpanRecord]) -> list[ErrorOccurrence]:
    """One occurrence per ``exception`` event of the spans (stored for the first time)."""
    out: list[ErrorOccurrence] = []
    for span in spans:
        if '"exception"' not in span.events:  # cheap test before parsing the events
            continue
        try:
            events = orjson.loads(span.events)
        except orjson.JSONDecodeError:
            continue
        for event in events:
            if not isinstance(event, dict) or event.get("name") != "exception":
                continue
            attrs = event.get("attributes")
            attrs = attrs if isinstance(attrs, dict) else {}
            time_ns = event.get("time_unix_nano")
            out.append(
                occurrence(
                    _text(attrs.get("exception.type")),
                    _text(attrs.get("exception.message")),
                    _text(attrs.get("exception.stacktrace")),
                    source=SPAN,
                    time_ns=time_ns if isinstance(time_ns, int) and time_ns > 0 else span.end_ns,
                    agent=span.agent,
                    trace_id=span.trace_id,
                )
            )
    return out


def log_occurrences(records: Iterable[LogRecord]) -> list[ErrorOccurrence]:
    """One occurrence per ERROR-or-worse log record (those carrying a fingerprint)."""
    out: list[ErrorOccurrence] = []
    for r in records:
        if r.fingerprint is None:
            continue
        found = occurrence(
            r.exc_type,
            r.exc_message,
            r.stacktrace,
            source=LOG,
            time_ns=r.time_ns,
            agent=r.agent,
            trace_id=r.trace_id,
            group_key=f"log:{r.level}",
        )
        out.append(found)
    return out


def minute_counts(occurrences: Iterable[ErrorOccurrence]) -> Counter[tuple[int, str, str]]:
    """Occurrences per (minute start in epoch seconds, fingerprint, agent)."""
    counts: Counter[tuple[int, str, str]] = Counter()
    for o in occurrences:
        bucket = o.time_ns // 1_000_000_000 // BUCKET_SECONDS * BUCKET_SECONDS
        counts[(bucket, o.fingerprint, o.agent)] += 1
    return counts


@dataclass(slots=True)
class GroupState:
    """One ``error_groups`` row."""

    fingerprint: str
    exc_type: str | None
    message: str
    sample_message: str | None
    stacktrace: str | None
    source: str
    first_seen_ns: int
    last_seen_ns: int
    count: int = 0
    status: str = OPEN
    resolved_at_ns: int | None = None
    regressed_at_ns: int | None = None
    sample_trace_id: str | None = None
    #: ``[trace_id, time_ns, agent]``, newest first.
    recent_traces: list[list[Any]] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)

    def as_row(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "exc_type": self.exc_type,
            "message": self.message,
            "sample_message": self.sample_message,
            "stacktrace": self.stacktrace,
            "source": self.source,
            "first_seen_ns": self.first_seen_ns,
            "last_seen_ns": self.last_seen_ns,
            "count": self.count,
            "status": self.status,
            "resolved_at_ns": self.resolved_at_ns,
            "regressed_at_ns": self.regressed_at_ns,
            "sample_trace_id": self.sample_trace_id,
            "recent_traces": orjson.dumps(self.recent_traces).decode(),
            "agents": orjson.dumps(self.agents).decode(),
        }


def new_group(first: ErrorOccurrence) -> GroupState:
    """The row of a group seen for the first time (count 0: :func:`merge_group` adds)."""
    return GroupState(
        fingerprint=first.fingerprint,
        exc_type=first.exc_type,
        message=first.message,
        sample_message=first.sample_message,
        stacktrace=first.stacktrace,
        source=first.source,
        first_seen_ns=first.time_ns,
        last_seen_ns=first.time_ns,
    )


def merge_group(state: GroupState, occurrences: Sequence[ErrorOccurrence]) -> GroupState:
    """``state`` with ``occurrences`` (all of its fingerprint) added."""
    if not occurrences:
        return state
    out = replace(state, recent_traces=list(state.recent_traces), agents=list(state.agents))
    ordered = sorted(occurrences, key=lambda o: o.time_ns)
    out.count += len(ordered)
    out.first_seen_ns = min(out.first_seen_ns, ordered[0].time_ns)
    latest = ordered[-1]
    if latest.time_ns >= state.last_seen_ns or state.count == 0:
        out.sample_message = latest.sample_message
        out.exc_type = latest.exc_type
        with_stack = [o for o in ordered if o.stacktrace]
        if with_stack:
            out.stacktrace = with_stack[-1].stacktrace
    elif out.stacktrace is None:
        out.stacktrace = next((o.stacktrace for o in reversed(ordered) if o.stacktrace), None)
    out.last_seen_ns = max(out.last_seen_ns, latest.time_ns)

    known = set(out.agents)
    for o in ordered:
        if o.agent not in known and len(out.agents) < MAX_AGENTS:
            out.agents.append(o.agent)
            known.add(o.agent)

    traces: dict[str, list[Any]] = {t[0]: t for t in out.recent_traces if t and t[0]}
    for o in ordered:
        if o.trace_id and (o.trace_id not in traces or traces[o.trace_id][1] <= o.time_ns):
            traces[o.trace_id] = [o.trace_id, o.time_ns, o.agent]
    out.recent_traces = sorted(traces.values(), key=lambda t: (-t[1], t[0]))[:MAX_RECENT_TRACES]
    if out.recent_traces:
        out.sample_trace_id = out.recent_traces[0][0]

    if state.status == RESOLVED and state.resolved_at_ns is not None:
        after = [o.time_ns for o in ordered if o.time_ns > state.resolved_at_ns]
        if after:  # it happened again after it was resolved: a regression
            out.status = OPEN
            out.regressed_at_ns = after[0]
    return out


def group_by_fingerprint(
    occurrences: Iterable[ErrorOccurrence],
) -> dict[str, list[ErrorOccurrence]]:
    groups: dict[str, list[ErrorOccurrence]] = {}
    for o in occurrences:
        groups.setdefault(o.fingerprint, []).append(o)
    return groups


def resolve(state: GroupState, now_ns: int) -> GroupState:
    """Mark resolved now; the next occurrence dated after ``now_ns`` re-opens it."""
    return replace(state, status=RESOLVED, resolved_at_ns=now_ns)


def reopen(state: GroupState) -> GroupState:
    """Re-open by hand (not a regression)."""
    return replace(state, status=OPEN, resolved_at_ns=None, regressed_at_ns=None)
