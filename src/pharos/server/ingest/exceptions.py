"""Error tracking (pure): occurrences from span exception events and ERROR logs, and how a
group's row changes when new occurrences arrive (DESIGN §3).

An **occurrence** is one exception: a span event named ``exception`` (its ``exception.type``,
``.message`` and ``.stacktrace`` attributes) or a log of severity ERROR or worse (its
``exception.*`` attributes, else its body as the message). Occurrences are grouped by
:func:`~pharos.server.ingest.fingerprint.fingerprint` (type + normalised message).

One failure is often reported twice: recorded on its span (an exception event) and logged with
``logger.exception`` inside that span (an ERROR log with the same trace and span ids). Both
describe the same **occurrence**, identified by (trace_id, span_id, fingerprint), so it counts
once: per identity a group counts ``max(S, L)`` for S exception events and L logs, whichever
arrives first and in however many requests. The span's events are always counted (their counts
follow the span when its agent changes, ingest/adopt.py); logs count for what exceeds the
events: :func:`log_share` when logs arrive after their span, :func:`stood_for_by_spans` (taken
back) when the span arrives after its logs. A log without span context always counts.

A group's state (:class:`GroupState`) is folded with new occurrences by :func:`merge_group`:
counts and first/last seen, the latest message and stack trace, the agents affected, the most
recent traces, and the **regression** rule: a resolved group that gets an occurrence dated after
its resolution re-opens, with ``regressed_at_ns`` the time of the first such occurrence.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
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
    span_id: str | None = None


#: Identifies one occurrence reported both on a span and by a log: (trace_id, span_id, fingerprint)
OccurrenceKey = tuple[str, str, str]


def occurrence_key(o: ErrorOccurrence) -> OccurrenceKey | None:
    """Its identity, or None without span context (then nothing else can report it)."""
    if o.trace_id and o.span_id:
        return (o.trace_id, o.span_id, o.fingerprint)
    return None


def occurrence(
    exc_type: str | None,
    message: str | None,
    stacktrace: str | None,
    *,
    source: str,
    time_ns: int,
    agent: str,
    trace_id: str | None,
    span_id: str | None = None,
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
        span_id=span_id,
    )


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def span_occurrences(spans: Iterable[SpanRecord]) -> list[ErrorOccurrence]:
    """One occurrence per ``exception`` event of the spans (stored for the first time)."""
    out: list[ErrorOccurrence] = []
    for span in spans:
        out += event_occurrences(
            span.events,
            end_ns=span.end_ns,
            agent=span.agent,
            trace_id=span.trace_id,
            span_id=span.span_id,
        )
    return out


def event_occurrences(
    events_json: str, *, end_ns: int, agent: str, trace_id: str, span_id: str
) -> list[ErrorOccurrence]:
    """The ``exception`` events of one span (its ``events`` JSON, as stored)."""
    if '"exception"' not in events_json:  # cheap test before parsing the events
        return []
    try:
        events = orjson.loads(events_json)
    except orjson.JSONDecodeError:
        return []
    out: list[ErrorOccurrence] = []
    for event in events if isinstance(events, list) else ():
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
                time_ns=time_ns if isinstance(time_ns, int) and time_ns > 0 else end_ns,
                agent=agent,
                trace_id=trace_id,
                span_id=span_id,
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
            span_id=r.span_id,
            group_key=f"log:{r.level}",
        )
        out.append(found)
    return out


def log_share(
    new: Sequence[ErrorOccurrence],
    logged_before: Mapping[OccurrenceKey, int],
    on_spans: Mapping[OccurrenceKey, int],
) -> list[ErrorOccurrence]:
    """The new log occurrences that count: per identity, what the logs (``logged_before``
    already stored, plus these) exceed the stored span's exception events (``on_spans``) by,
    less what the earlier logs counted. A log without span context always counts."""
    kept: list[ErrorOccurrence] = []
    by_key: dict[OccurrenceKey, list[ErrorOccurrence]] = {}
    for o in new:
        key = occurrence_key(o)
        if key is None:
            kept.append(o)
        else:
            by_key.setdefault(key, []).append(o)
    for key, group in by_key.items():
        before, events = logged_before.get(key, 0), on_spans.get(key, 0)
        n = max(0, before + len(group) - events) - max(0, before - events)
        if n:
            kept += sorted(group, key=lambda o: o.time_ns)[-n:]
    return kept


def stood_for_by_spans(
    span_found: Sequence[ErrorOccurrence], logged: Mapping[OccurrenceKey, Sequence[ErrorOccurrence]]
) -> list[ErrorOccurrence]:
    """Log occurrences counted before their span arrived that the span's exception events
    (``span_found``, all counted) now stand for: per identity min(logs, events), the earliest
    logs first. They are taken back, so each identity counts max(events, logs)."""
    events: Counter[OccurrenceKey] = Counter()
    for o in span_found:
        key = occurrence_key(o)
        if key is not None:
            events[key] += 1
    out: list[ErrorOccurrence] = []
    for key, n in events.items():
        earlier = sorted(logged.get(key, ()), key=lambda o: o.time_ns)
        out += earlier[:n]
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
