"""The alert state machine with a fake clock: for, keep_firing_for (flap damping), repeat,
acknowledge and silence."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from pharos.server.alerting.state import (
    NOTIFYING,
    NS,
    STATES,
    AlertState,
    Timing,
    quiet,
    resolve_manually,
    step,
)

MIN = 60 * NS


def drive(conditions: list[bool], timing: Timing, every: int = MIN) -> tuple[AlertState, list[str]]:
    state, events = AlertState(), []
    for i, active in enumerate(conditions):
        state, new = step(state, active, i * every, timing, 1.0 if active else 0.0)
        events += new
    return state, events


def test_pending_waits_for_then_fires() -> None:
    timing = Timing(for_ns=3 * MIN)
    state, events = drive([True, True, True], timing)
    assert state.state == "pending" and events == ["pending"]
    state, events = drive([True, True, True, True], timing)
    assert state.state == "firing" and events == ["pending", "firing"]
    assert state.fired_ns == 3 * MIN and state.last_notified_ns == 3 * MIN


def test_a_blip_shorter_than_for_never_fires() -> None:
    _, events = drive([True, False, True, False, True, False], Timing(for_ns=2 * MIN))
    assert "firing" not in events


def test_for_zero_fires_at_once_and_resolves_when_false() -> None:
    state, events = drive([True, False], Timing())
    assert events == ["pending", "firing", "resolved"] and state.state == "resolved"


def test_oscillating_condition_notifies_once_with_keep_firing_for() -> None:
    flapping = [i % 2 == 0 for i in range(40)] + [False] * 10  # true/false every minute
    _, undamped = drive(flapping, Timing())
    assert sum(e in NOTIFYING for e in undamped) == 40  # 20 firing + 20 resolved: a storm
    state, damped = drive(flapping, Timing(keep_firing_for_ns=5 * MIN))
    assert [e for e in damped if e in NOTIFYING] == ["firing", "resolved"]
    assert state.state == "resolved"
    # It resolves keep_firing_for after the condition was last true (minute 38).
    assert state.resolved_ns == 43 * MIN


def test_for_and_keep_firing_for_together_under_flapping() -> None:
    flapping = [(i // 2) % 2 == 0 for i in range(60)]  # two minutes on, two off
    _, events = drive(flapping, Timing(for_ns=3 * MIN, keep_firing_for_ns=5 * MIN))
    assert [e for e in events if e in NOTIFYING] == []  # never true for 3 minutes in a row


def test_repeat_while_firing_unless_acked_or_silenced() -> None:
    timing = Timing(repeat_interval_ns=10 * MIN)
    _, events = drive([True] * 31, timing)
    assert events == ["pending", "firing", "repeat", "repeat", "repeat"]

    state, _ = step(AlertState(), True, 0, timing)
    state = replace(state, acked=True)
    for minute in range(1, 40):
        state, new = step(state, True, minute * MIN, timing)
        assert new == []

    state, new = step(AlertState(silenced=True), True, 0, timing)
    assert new == ["pending", "firing"] and state.last_notified_ns is None
    state, new = step(state, True, MIN, timing)
    assert new == []  # still silenced
    state, new = step(replace(state, silenced=False), True, 2 * MIN, timing)
    assert new == ["repeat"]  # the silence ended: notified now (the engine sends it as firing)


def test_new_episode_clears_ack() -> None:
    timing = Timing()
    state, _ = step(AlertState(), True, 0, timing)
    state, _ = step(replace(state, acked=True), False, MIN, timing)
    assert state.state == "resolved"
    state, events = step(state, True, 2 * MIN, timing)
    assert events == ["pending", "firing"] and not state.acked


def test_manual_resolve() -> None:
    state, _ = step(AlertState(), True, 0, Timing())
    state, events = resolve_manually(state, MIN)
    assert state.state == "resolved" and events == ["resolved"]
    assert resolve_manually(state, 2 * MIN) == (state, [])
    pending, _ = step(AlertState(), True, 0, Timing(for_ns=MIN * 5))
    state, events = resolve_manually(pending, MIN)
    assert state.state == "resolved" and events == []  # never notified, nothing to resolve


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(STATES),
    st.booleans(),
    st.integers(0, 100),
    st.one_of(st.none(), st.integers(0, 100)),
    st.one_of(st.none(), st.integers(0, 100)),
    st.one_of(st.none(), st.integers(0, 100)),
    st.booleans(),
    st.booleans(),
    st.integers(0, 30),
    st.integers(0, 30),
    st.integers(0, 30),
)
def test_quiet_agrees_with_step(
    state: str,
    active: bool,
    now: int,
    pending_since: int | None,
    last_true: int | None,
    last_notified: int | None,
    acked: bool,
    silenced: bool,
    for_m: int,
    keep_m: int,
    repeat_m: int,
) -> None:
    """The engine's fast path: whenever quiet() says so, step() emits nothing and keeps the
    state (only last_true_ns and the value move)."""
    timing = Timing(for_m * MIN, keep_m * MIN, repeat_m * MIN)
    prev = AlertState(
        state=state,
        pending_since_ns=None if pending_since is None else pending_since * MIN,
        last_true_ns=None if last_true is None else last_true * MIN,
        last_notified_ns=None if last_notified is None else last_notified * MIN,
        acked=acked,
        silenced=silenced,
    )
    if quiet(
        state,
        active,
        now * MIN,
        timing,
        pending_since_ns=prev.pending_since_ns,
        last_true_ns=prev.last_true_ns,
        last_notified_ns=prev.last_notified_ns,
        acked=acked,
        silenced=silenced,
    ):
        nxt, events = step(prev, active, now * MIN, timing)
        assert events == []
        assert nxt.state == prev.state
        assert nxt.pending_since_ns == prev.pending_since_ns
        assert nxt.last_notified_ns == prev.last_notified_ns
