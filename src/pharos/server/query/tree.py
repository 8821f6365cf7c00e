"""Assemble a trace's spans into a tree (pure).

Spans arrive in any order and a parent may be missing (not sent yet, or dropped upstream):
such spans become roots marked ``orphan``. The result is a flat list in depth-first order, each
span with its ``depth`` and the ids of its ``children`` — deep traces stay serialisable (no
nesting limit) and a waterfall can draw the list as it comes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

AGENT_KEYS = ("gen_ai.agent.name", "agent.name")


def build_tree(spans: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Order ``spans`` (dicts with span_id, parent_span_id, start_ns, attributes, agent) as a
    tree. Returns (spans in depth-first order with depth/children/orphan/agent set, root ids).

    A span's ``agent`` is its own agent attribute, else its nearest ancestor's, else the
    stored one (the resource's service name) — so an agent span sent after its children still
    names the agent of the calls made inside it.
    """
    by_id: dict[str, dict[str, Any]] = {}
    for span in spans:
        by_id.setdefault(span["span_id"], dict(span))
    children: dict[str, list[dict[str, Any]]] = {sid: [] for sid in by_id}
    roots: list[dict[str, Any]] = []
    for node in by_id.values():
        parent = node.get("parent_span_id")
        if parent and parent in by_id and parent != node["span_id"]:
            children[parent].append(node)
            node["orphan"] = False
        else:
            node["orphan"] = bool(parent)
            roots.append(node)

    def order(n: Mapping[str, Any]) -> tuple[int, str]:
        return (int(n["start_ns"]), str(n["span_id"]))

    roots.sort(key=order)
    for kids in children.values():
        kids.sort(key=order)

    ordered: list[dict[str, Any]] = []
    visited: set[str] = set()
    # Iterative DFS: (node, depth, inherited agent).
    stack: list[tuple[dict[str, Any], int, str | None]] = [(r, 0, None) for r in reversed(roots)]
    pending_cycle_roots = [n for n in by_id.values()]
    while True:
        while stack:
            node, depth, inherited = stack.pop()
            sid = node["span_id"]
            if sid in visited:
                continue
            visited.add(sid)
            own = _explicit_agent(node.get("attributes"))
            agent = own or inherited
            if agent:
                node["agent"] = agent
            node["depth"] = depth
            # A kid already visited is a parent cycle's chosen root: listing it would make
            # the children links loop.
            kids = [k for k in children[sid] if k["span_id"] not in visited]
            node["children"] = [k["span_id"] for k in kids]
            ordered.append(node)
            for kid in reversed(kids):
                stack.append((kid, depth + 1, agent))
        # Spans caught in a parent cycle are never reached from a root: show them as roots.
        leftover = next((n for n in pending_cycle_roots if n["span_id"] not in visited), None)
        if leftover is None:
            break
        leftover["orphan"] = True
        roots.append(leftover)
        stack.append((leftover, 0, None))
    return ordered, [r["span_id"] for r in roots]


def _explicit_agent(attributes: Any) -> str | None:
    if isinstance(attributes, Mapping):
        for key in AGENT_KEYS:
            value = attributes.get(key)
            if isinstance(value, str) and value:
                return value
    return None
