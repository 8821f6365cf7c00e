"""Assembling a trace's spans into a depth-first tree: any arrival order, orphans, parent cycles,
very deep traces, and agent inheritance from an ancestor's gen_ai.agent.name."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pharos.server.query.tree import build_tree


def sp(
    span_id: str,
    parent: str | None = None,
    start: int = 0,
    agent: str = "svc",
    attributes: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "span_id": span_id,
        "parent_span_id": parent,
        "start_ns": start,
        "agent": agent,
        "attributes": attributes if attributes is not None else {},
        **extra,
    }


def ids(nodes: list[dict[str, Any]]) -> list[str]:
    return [n["span_id"] for n in nodes]


def by_id(nodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {n["span_id"]: n for n in nodes}


def check_shape(nodes: list[dict[str, Any]], roots: list[str], sent: set[str]) -> None:
    """Invariants of any result: every span once, children links form a forest that the list
    walks depth first, depths follow the links."""
    assert sorted(ids(nodes)) == sorted(sent)
    index = by_id(nodes)
    seen_as_child: set[str] = set()
    for node in nodes:
        for kid in node["children"]:
            assert index[kid]["depth"] == node["depth"] + 1
            assert kid not in seen_as_child  # one parent each
            seen_as_child.add(kid)
    assert set(roots) == set(index) - seen_as_child
    assert all(index[r]["depth"] == 0 for r in roots)
    # depth-first: the list is the pre-order walk of the roots in order
    walk: list[str] = []
    stack = list(reversed(roots))
    while stack:
        sid = stack.pop()
        walk.append(sid)
        stack.extend(reversed(index[sid]["children"]))
    assert walk == ids(nodes)


def test_empty() -> None:
    assert build_tree([]) == ([], [])


def test_children_sent_before_their_parent() -> None:
    spans = [sp("c2", "r", 20), sp("gc", "c1", 15), sp("c1", "r", 10), sp("r", None, 0)]
    nodes, roots = build_tree(spans)
    assert roots == ["r"]
    assert ids(nodes) == ["r", "c1", "gc", "c2"]
    assert [n["depth"] for n in nodes] == [0, 1, 2, 1]
    index = by_id(nodes)
    assert index["r"]["children"] == ["c1", "c2"]
    assert index["c1"]["children"] == ["gc"]
    assert index["gc"]["children"] == [] and index["c2"]["children"] == []
    assert not any(n["orphan"] for n in nodes)
    check_shape(nodes, roots, {"r", "c1", "c2", "gc"})


def test_children_are_listed_in_start_order_then_by_id() -> None:
    spans = [sp("r"), sp("z", "r", 5), sp("b", "r", 7), sp("a", "r", 7), sp("m", "r", 1)]
    nodes, _ = build_tree(spans)
    assert by_id(nodes)["r"]["children"] == ["m", "z", "a", "b"]
    assert ids(nodes) == ["r", "m", "z", "a", "b"]


def test_several_roots_in_start_order() -> None:
    nodes, roots = build_tree([sp("late", None, 9), sp("early", None, 1), sp("k", "late", 10)])
    assert roots == ["early", "late"]
    assert ids(nodes) == ["early", "late", "k"]


def test_a_span_whose_parent_is_missing_is_an_orphan_root() -> None:
    spans = [sp("r", None, 0), sp("lost", "not-sent-yet", 5), sp("kid", "lost", 6)]
    nodes, roots = build_tree(spans)
    index = by_id(nodes)
    assert roots == ["r", "lost"]
    assert index["lost"]["orphan"] is True and index["lost"]["depth"] == 0
    assert index["r"]["orphan"] is False
    assert (index["kid"]["orphan"], index["kid"]["depth"]) == (False, 1)
    check_shape(nodes, roots, {"r", "lost", "kid"})


def test_empty_parent_id_means_root() -> None:
    nodes, roots = build_tree([sp("a", ""), sp("b", None, 1)])
    assert roots == ["a", "b"]
    assert not any(n["orphan"] for n in nodes)


def test_a_span_that_is_its_own_parent_is_shown_as_a_root() -> None:
    nodes, roots = build_tree([sp("self", "self")])
    assert roots == ["self"]
    assert nodes[0]["children"] == [] and nodes[0]["depth"] == 0


@pytest.mark.parametrize("size", [2, 3, 10])
def test_a_parent_cycle_terminates_and_lists_every_span_once(size: int) -> None:
    # a -> b -> c -> ... -> a, plus a normal root and a span hanging off the cycle
    cycle = [sp(f"c{i}", f"c{(i + 1) % size}", i) for i in range(size)]
    spans = [sp("root"), *cycle, sp("hanger", "c0", 99)]
    nodes, roots = build_tree(spans)
    sent = {s["span_id"] for s in spans}
    check_shape(nodes, roots, sent)
    assert roots[0] == "root"
    cycle_roots = [r for r in roots if r != "root"]
    assert len(cycle_roots) == 1  # one span of the cycle is chosen to show it
    assert by_id(nodes)[cycle_roots[0]]["orphan"] is True


def test_two_separate_cycles() -> None:
    spans = [sp("a", "b"), sp("b", "a"), sp("x", "y"), sp("y", "x")]
    nodes, roots = build_tree(spans)
    check_shape(nodes, roots, {"a", "b", "x", "y"})
    assert len(roots) == 2


def test_a_five_thousand_deep_chain() -> None:
    depth = 5000
    spans = [sp(f"s{i}", f"s{i - 1}" if i else None, i) for i in range(depth)]
    spans.reverse()  # deepest first
    spans[-1]["attributes"] = {"gen_ai.agent.name": "deep-agent"}
    nodes, roots = build_tree(spans)
    assert roots == ["s0"]
    assert ids(nodes) == [f"s{i}" for i in range(depth)]
    assert [n["depth"] for n in nodes] == list(range(depth))
    assert nodes[-1]["agent"] == "deep-agent"
    check_shape(nodes, roots, {f"s{i}" for i in range(depth)})


def test_a_wide_trace() -> None:
    spans = [sp("r"), *(sp(f"k{i:05}", "r", i) for i in range(5000))]
    nodes, roots = build_tree(spans)
    assert roots == ["r"]
    assert len(by_id(nodes)["r"]["children"]) == 5000


def test_duplicate_span_ids_keep_the_first() -> None:
    nodes, _ = build_tree([sp("a", None, 0, agent="first"), sp("a", None, 5, agent="second")])
    assert len(nodes) == 1 and nodes[0]["agent"] == "first"


def test_the_input_is_not_modified() -> None:
    spans = [sp("c", "r", 1), sp("r", attributes={"gen_ai.agent.name": "a"})]
    before = [dict(s) for s in spans]
    build_tree(spans)
    assert spans == before


def test_other_fields_are_passed_through() -> None:
    nodes, _ = build_tree([sp("r", name="run", duration_ms=12.5)])
    assert (nodes[0]["name"], nodes[0]["duration_ms"]) == ("run", 12.5)


# --- agent inheritance ---------------------------------------------------------------------------


def test_spans_inherit_the_agent_of_an_ancestor_agent_span() -> None:
    # The agent span arrived last: its children were stored with the service as agent.
    spans = [
        sp("llm", "run", 1, agent="openinference-demo-agent"),
        sp("tool", "llm", 2, agent="openinference-demo-agent"),
        sp("run", None, 0, "openinference-demo-agent", {"gen_ai.agent.name": "support-agent"}),
    ]
    nodes, _ = build_tree(spans)
    assert {n["span_id"]: n["agent"] for n in nodes} == {
        "run": "support-agent",
        "llm": "support-agent",
        "tool": "support-agent",
    }


def test_the_nearest_agent_wins_and_agent_name_counts_too() -> None:
    spans = [
        sp("outer", attributes={"gen_ai.agent.name": "outer"}),
        sp("inner", "outer", 1, attributes={"agent.name": "inner"}),
        sp("deep", "inner", 2),
        sp("side", "outer", 3),
        sp("both", "outer", 4, attributes={"gen_ai.agent.name": "g", "agent.name": "a"}),
    ]
    agents = {n["span_id"]: n["agent"] for n in build_tree(spans)[0]}
    assert agents == {
        "outer": "outer",
        "inner": "inner",
        "deep": "inner",
        "side": "outer",
        "both": "g",
    }


def test_without_an_agent_ancestor_the_stored_agent_stays() -> None:
    spans = [
        sp("r", agent="svc-a"),
        sp("c", "r", 1, agent="svc-b"),
        sp("o", "missing", 2, agent="svc-c"),
        sp("x", "r", 3, agent="svc-d", attributes={"gen_ai.agent.name": ""}),  # empty: ignored
        sp("y", "r", 4, agent="svc-e", attributes=None),
    ]
    spans[4]["attributes"] = "not a mapping"
    agents = {n["span_id"]: n["agent"] for n in build_tree(spans)[0]}
    assert agents == {"r": "svc-a", "c": "svc-b", "o": "svc-c", "x": "svc-d", "y": "svc-e"}


def test_an_orphan_does_not_inherit_across_the_gap() -> None:
    spans = [sp("r", attributes={"gen_ai.agent.name": "a"}), sp("o", "gone", 1, agent="svc")]
    assert by_id(build_tree(spans)[0])["o"]["agent"] == "svc"


# --- property ------------------------------------------------------------------------------------


@st.composite
def forests(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 30))
    names = [f"s{i}" for i in range(n)]
    pool = [*names, "missing", None, ""]
    spans = [
        sp(
            name,
            draw(st.sampled_from(pool)),
            draw(st.integers(0, 5)),
            attributes=draw(st.sampled_from([{}, {"gen_ai.agent.name": "A"}, {"agent.name": "B"}])),
        )
        for name in names
    ]
    return draw(st.permutations(spans))


@settings(max_examples=300, deadline=None)
@given(forests())
def test_any_spans_give_a_well_formed_tree(spans: list[dict[str, Any]]) -> None:
    nodes, roots = build_tree(spans)
    check_shape(nodes, roots, {s["span_id"] for s in spans})
    index = by_id(nodes)
    sent = {s["span_id"]: s for s in spans}
    for node in nodes:
        parent = sent[node["span_id"]]["parent_span_id"]
        if node["depth"] > 0:  # a child sits under the parent it named
            assert node["span_id"] in index[parent]["children"]
        elif parent and parent not in sent:
            assert node["orphan"] is True
        own = node["attributes"].get("gen_ai.agent.name") or node["attributes"].get("agent.name")
        if own:
            assert node["agent"] == own
        elif node["depth"] > 0:
            assert node["agent"] == index[parent]["agent"]  # inherited (or both the service's)
    # the same spans in another order give the same tree
    assert build_tree(list(reversed(spans))) == (nodes, roots) or _has_cycle(spans)


def _has_cycle(spans: list[dict[str, Any]]) -> bool:
    """Which span of a cycle becomes its root depends on arrival order."""
    parent = {s["span_id"]: s["parent_span_id"] for s in spans}
    for start in parent:
        seen = set()
        node: str | None = start
        while node in parent and node not in seen:
            seen.add(node)
            node = parent[node]
        if node in seen:
            return True
    return False
