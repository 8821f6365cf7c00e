"""Where a trace spends its time: self time, the critical path and the top bottlenecks (pure).

Input is the spans of one trace as :class:`SpanTiming` (integer nanoseconds); output is an
:class:`Analysis`. Nothing here knows about HTTP or the database.

**Self time** of a span is its duration minus the *union* of its children's intervals, each
clipped to the span's own interval: children running in parallel are not subtracted twice, and a
child that outlives its parent (fire-and-forget) only hides the part that overlaps the parent.

**Critical path** — the work that decides when the trace ends — is found the usual way (as in
Jaeger): take the root that ends last; walking backwards from its end, descend into the child
that finishes last, attribute the gap after that child to the parent, continue inside the child,
then resume in the parent from the child's start with the last-finishing child that ended
before that point, and so on. Children are clipped to their parent's interval first (clock skew
and async children must not stretch the parent), and children entirely outside it are ignored.
So sequential children are all on the path, while of parallel children only the one the parent
waited for is. Each span on the path gets the time it alone held the path (``path_ns``); these
add up to the chosen root's duration.

The tree is built like ``query/tree.py`` builds it: first occurrence of a span id wins, a span
whose parent is unknown (or itself) is a root (an orphan), and spans caught in a parent cycle
become roots in input order. Everything is iterative: 5,000-deep chains are fine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NS_PER_MS = 1_000_000
TOP_N = 5


@dataclass(frozen=True, slots=True)
class SpanTiming:
    span_id: str
    parent_span_id: str | None
    start_ns: int
    end_ns: int
    name: str = ""
    kind: str = ""
    agent: str = ""
    status: str = ""


@dataclass(frozen=True, slots=True)
class Bottleneck:
    span_id: str
    name: str
    kind: str
    agent: str
    self_ns: int
    share: float  # self time / trace duration, 0..1 (0 for a zero-duration trace)

    def to_dict(self) -> dict[str, Any]:
        return {
            "span_id": self.span_id,
            "name": self.name,
            "kind": self.kind,
            "agent": self.agent,
            "self_ms": ms(self.self_ns),
            "share": self.share,
        }


@dataclass(frozen=True, slots=True)
class PathStep:
    span_id: str
    path_ns: int  # time during which this span alone held the critical path


@dataclass(frozen=True, slots=True)
class Analysis:
    trace_start_ns: int
    trace_end_ns: int
    self_ns: Mapping[str, int]
    critical_path: tuple[PathStep, ...]  # the chosen root first, then in the order walked
    top: tuple[Bottleneck, ...]

    @property
    def trace_duration_ns(self) -> int:
        return self.trace_end_ns - self.trace_start_ns

    def critical_ids(self) -> frozenset[str]:
        return frozenset(step.span_id for step in self.critical_path)

    def to_dict(self, top_n: int | None = None) -> dict[str, Any]:
        """The API shape: critical path ids (and each one's time on it), top spans, duration."""
        top = self.top if top_n is None else self.top[:top_n]
        return {
            "critical_path": [step.span_id for step in self.critical_path],
            "critical_path_steps": [
                {"span_id": step.span_id, "self_ms": ms(step.path_ns)}
                for step in self.critical_path
            ],
            "top": [b.to_dict() for b in top],
            "trace_duration_ms": ms(self.trace_duration_ns),
        }


def ms(ns: int) -> float:
    """Integer nanoseconds -> milliseconds rounded to 3 decimals."""
    return round(ns / NS_PER_MS, 3)


def share_of(part_ns: int, whole_ns: int) -> float:
    return round(part_ns / whole_ns, 4) if whole_ns > 0 else 0.0


def span_timing(span: Mapping[str, Any]) -> SpanTiming:
    """A :class:`SpanTiming` from a mapping with ``span_id``, ``parent_span_id``, ``start_ns``
    and ``end_ns`` (or ``duration_ns``, or ``duration_ms``), plus optional name/kind/agent/status.
    """
    start = int(span["start_ns"])
    if span.get("end_ns") is not None:
        end = int(span["end_ns"])
    elif span.get("duration_ns") is not None:
        end = start + int(span["duration_ns"])
    else:
        end = start + round(float(span.get("duration_ms") or 0) * NS_PER_MS)
    return SpanTiming(
        span_id=str(span["span_id"]),
        parent_span_id=span.get("parent_span_id") or None,
        start_ns=start,
        end_ns=end,
        name=str(span.get("name") or ""),
        kind=str(span.get("kind") or ""),
        agent=str(span.get("agent") or ""),
        status=str(span.get("status") or ""),
    )


def analyze(spans: Iterable[SpanTiming], *, top_n: int = TOP_N) -> Analysis:
    """Self time of every span, the critical path and the ``top_n`` spans by self time."""
    by_id: dict[str, SpanTiming] = {}
    for span in spans:
        by_id.setdefault(span.span_id, span)
    if not by_id:
        return Analysis(0, 0, {}, (), ())
    start = {sid: s.start_ns for sid, s in by_id.items()}
    end = {sid: max(s.end_ns, s.start_ns) for sid, s in by_id.items()}

    roots, children = _tree(by_id)
    self_ns = _self_times(start, end, children)
    path = _critical_path(roots, start, end, children)

    trace_start = min(start.values())
    trace_end = max(end.values())
    duration = trace_end - trace_start
    ranked = sorted(by_id, key=lambda sid: (-self_ns[sid], start[sid], sid))[: max(top_n, 0)]
    top = tuple(
        Bottleneck(
            span_id=sid,
            name=by_id[sid].name,
            kind=by_id[sid].kind,
            agent=by_id[sid].agent,
            self_ns=self_ns[sid],
            share=share_of(self_ns[sid], duration),
        )
        for sid in ranked
    )
    return Analysis(trace_start, trace_end, self_ns, path, top)


def _tree(by_id: Mapping[str, SpanTiming]) -> tuple[list[str], dict[str, list[str]]]:
    """(roots, children) with every span reachable exactly once from a root; no cycles."""
    linked: dict[str, list[str]] = {sid: [] for sid in by_id}
    roots: list[str] = []
    for sid, span in by_id.items():
        parent = span.parent_span_id
        if parent and parent in by_id and parent != sid:
            linked[parent].append(sid)
        else:
            roots.append(sid)
    children: dict[str, list[str]] = {sid: [] for sid in by_id}
    visited: set[str] = set()

    def walk(root: str) -> None:
        visited.add(root)
        todo = [root]
        while todo:
            sid = todo.pop()
            for kid in linked[sid]:
                if kid not in visited:  # the edge back into a cycle's chosen root is dropped
                    visited.add(kid)
                    children[sid].append(kid)
                    todo.append(kid)

    for root in roots:
        walk(root)
    if len(visited) < len(by_id):
        # Spans in a parent cycle are never reached from a root: each cycle gets broken at its
        # first span in input order, which becomes a root (as query/tree.py shows it).
        for sid in by_id:
            if sid not in visited:
                roots.append(sid)
                walk(sid)
    return roots, children


def _union_ns(intervals: list[tuple[int, int]]) -> int:
    """Total length covered by intervals (overlaps counted once)."""
    if not intervals:
        return 0
    ordered = sorted(intervals)
    total = 0
    cur_lo, cur_hi = ordered[0]
    for lo, hi in ordered[1:]:
        if lo > cur_hi:
            total += cur_hi - cur_lo
            cur_lo, cur_hi = lo, hi
        elif hi > cur_hi:
            cur_hi = hi
    return total + cur_hi - cur_lo


def _self_times(
    start: Mapping[str, int], end: Mapping[str, int], children: Mapping[str, list[str]]
) -> dict[str, int]:
    out: dict[str, int] = {}
    for sid, kids in children.items():
        lo, hi = start[sid], end[sid]
        clipped = []
        for kid in kids:
            k_lo, k_hi = max(start[kid], lo), min(end[kid], hi)
            if k_hi > k_lo:
                clipped.append((k_lo, k_hi))
        out[sid] = hi - lo - _union_ns(clipped)
    return out


def _critical_path(
    roots: list[str],
    start: Mapping[str, int],
    end: Mapping[str, int],
    children: Mapping[str, list[str]],
) -> tuple[PathStep, ...]:
    root = min(roots, key=lambda sid: (-end[sid], start[sid], sid))
    # Each span's interval clipped to its (clipped) parent's, top-down; spans whose clipped
    # interval is empty (entirely outside their parent) are left out with their subtrees.
    eff: dict[str, tuple[int, int]] = {root: (start[root], end[root])}
    # Candidate children per span, last-finishing first; ``cursor`` walks through them once,
    # since the point we look back from only moves earlier.
    ranked: dict[str, list[str]] = {}
    todo = [root]
    while todo:
        sid = todo.pop()
        lo, hi = eff[sid]
        kids = []
        for kid in children[sid]:
            k_lo, k_hi = max(start[kid], lo), min(end[kid], hi)
            if k_hi > k_lo:
                eff[kid] = (k_lo, k_hi)
                kids.append(kid)
                todo.append(kid)
        kids.sort(key=lambda k: (-eff[k][1], eff[k][0], k))
        ranked[sid] = kids

    cursor: dict[str, int] = {}
    held: dict[str, int] = {}  # insertion order = the order spans join the path
    # Frames (span, t): account for the span's part of the path that ends at time t.
    frames: list[tuple[str, int]] = [(root, eff[root][1])]
    while frames:
        sid, t = frames.pop()
        held.setdefault(sid, 0)
        lo = eff[sid][0]
        kids = ranked[sid]
        i = cursor.get(sid, 0)
        while i < len(kids) and eff[kids[i]][1] > t:
            i += 1  # ran in parallel with a child already on the path
        if i == len(kids):
            cursor[sid] = i
            held[sid] += t - lo
            continue
        kid = kids[i]
        cursor[sid] = i + 1
        k_lo, k_hi = eff[kid]
        held[sid] += t - k_hi
        if k_lo > lo:
            frames.append((sid, k_lo))  # then what the span did before this child started
        frames.append((kid, k_hi))
    return tuple(PathStep(sid, ns) for sid, ns in held.items())
