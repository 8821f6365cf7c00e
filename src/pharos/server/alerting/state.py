"""The alert state machine (pure): ``step(prev, active, now, timing) -> (next, events)``.

States: ``inactive`` → ``pending`` (condition true, waiting ``for``) → ``firing`` → ``resolved``
(condition false for ``keep_firing_for``). A condition that goes false while pending drops back to
``inactive`` without a notification; one that flickers while firing keeps firing until it has
stayed false for ``keep_firing_for`` (flap damping). While firing, neither acknowledged nor
silenced, a ``repeat`` event is due every ``repeat_interval``.

Events are what the engine writes to history, and what it notifies: ``pending``, ``firing``,
``resolved``, ``repeat``. Times are nanoseconds; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

NS = 1_000_000_000
STATES = ("inactive", "pending", "firing", "resolved")
#: Events that send a notification.
NOTIFYING = frozenset({"firing", "resolved", "repeat"})


@dataclass(frozen=True, slots=True)
class Timing:
    for_ns: int = 0
    keep_firing_for_ns: int = 0
    repeat_interval_ns: int = 4 * 3600 * NS  # 0 = never repeat


@dataclass(frozen=True, slots=True)
class AlertState:
    state: str = "inactive"
    pending_since_ns: int | None = None  # condition true since (this episode)
    fired_ns: int | None = None  # became firing
    last_true_ns: int | None = None  # condition last seen true
    resolved_ns: int | None = None
    last_notified_ns: int | None = None  # last firing/repeat notification
    acked: bool = False
    silenced: bool = False
    value: float | None = None


def step(
    prev: AlertState, active: bool, now_ns: int, timing: Timing, value: float | None = None
) -> tuple[AlertState, list[str]]:
    """One evaluation of one alert. ``active``: the rule's condition holds for this label set
    now (a label set missing from the result counts as false)."""
    events: list[str] = []
    s = replace(prev, value=value if active or value is not None else prev.value)
    if active:
        s = replace(s, last_true_ns=now_ns)
        if s.state in ("inactive", "resolved"):
            s = replace(
                s, state="pending", pending_since_ns=now_ns, fired_ns=None, resolved_ns=None
            )
            s = replace(s, acked=False)
            events.append("pending")
        if s.state == "pending":
            since = s.pending_since_ns if s.pending_since_ns is not None else now_ns
            if now_ns - since >= timing.for_ns:
                s = replace(s, state="firing", fired_ns=now_ns, last_notified_ns=None)
                events.append("firing")
                if not s.silenced:
                    s = replace(s, last_notified_ns=now_ns)
                return s, events
    else:
        if s.state == "pending":
            return replace(s, state="inactive", pending_since_ns=None), events
        if s.state == "firing":
            last_true = s.last_true_ns if s.last_true_ns is not None else now_ns
            if now_ns - last_true >= timing.keep_firing_for_ns:
                s = replace(s, state="resolved", resolved_ns=now_ns, pending_since_ns=None)
                events.append("resolved")
                return s, events
    if s.state == "firing" and _repeat_due(s, now_ns, timing):
        events.append("repeat")
        s = replace(s, last_notified_ns=now_ns)
    return s, events


def _repeat_due(s: AlertState, now_ns: int, timing: Timing) -> bool:
    if timing.repeat_interval_ns <= 0 or s.acked or s.silenced:
        return False
    last = s.last_notified_ns
    if last is None:  # silenced when it fired, not any more: notify now
        return True
    return now_ns - last >= timing.repeat_interval_ns


def resolve_manually(prev: AlertState, now_ns: int) -> tuple[AlertState, list[str]]:
    """An operator resolves an alert: it leaves pending/firing at once (if the condition still
    holds, the next evaluation starts a new episode)."""
    if prev.state not in ("pending", "firing"):
        return prev, []
    was_firing = prev.state == "firing"
    s = replace(prev, state="resolved", resolved_ns=now_ns, pending_since_ns=None)
    return s, ["resolved"] if was_firing else []


def quiet(
    state: str,
    active: bool,
    now_ns: int,
    timing: Timing,
    *,
    pending_since_ns: int | None,
    last_true_ns: int | None,
    last_notified_ns: int | None,
    acked: bool,
    silenced: bool,
) -> bool:
    """True when :func:`step` would emit no event and change nothing but ``last_true_ns``/the
    value: the common case of a cycle, decided without building states (the engine evaluates
    every active alert every cycle)."""
    if state == "firing":
        if not active and (
            last_true_ns is None or now_ns - last_true_ns >= timing.keep_firing_for_ns
        ):
            return False  # resolves now
        if timing.repeat_interval_ns <= 0 or acked or silenced:
            return True
        return last_notified_ns is not None and (
            now_ns - last_notified_ns < timing.repeat_interval_ns
        )
    if state == "pending":
        return (
            active and pending_since_ns is not None and (now_ns - pending_since_ns < timing.for_ns)
        )
    return not active
