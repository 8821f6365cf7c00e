"""@pharos.agent / llm / tool / span: sync, async, generators, context managers; signatures,
exceptions, GenAI attributes, content capture — read back from the spans as exported."""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import pharos
from tests.sdk.conftest import MemorySDK


class Boom(Exception):
    pass


# --- the four shapes of function -----------------------------------------------------------------


def test_sync_function_keeps_signature_result_and_gets_a_tool_span(sdk: MemorySDK) -> None:
    @pharos.tool
    def search_kb(query: str, limit: int = 3) -> list[str]:
        """Search the knowledge base.

        More text."""
        return [query] * limit

    assert search_kb.__name__ == "search_kb"
    sig = inspect.signature(search_kb)
    assert sig == inspect.signature(search_kb.__wrapped__)  # type: ignore[attr-defined]
    assert list(sig.parameters) == ["query", "limit"]
    assert sig.parameters["limit"].default == 3
    assert search_kb("x", limit=2) == ["x", "x"]
    span = sdk.span("execute_tool search_kb")
    assert span.kind == SpanKind.INTERNAL
    assert span.attributes == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.name": "search_kb",
        "gen_ai.tool.description": "Search the knowledge base.",
    }
    assert span.status.status_code == StatusCode.UNSET


def test_async_function(sdk: MemorySDK) -> None:
    @pharos.agent(name="support-bot")
    async def handle(ticket: int) -> str:
        await asyncio.sleep(0)
        return f"answered {ticket}"

    assert inspect.iscoroutinefunction(handle)
    assert list(inspect.signature(handle).parameters) == ["ticket"]
    assert asyncio.run(handle(7)) == "answered 7"
    span = sdk.span("invoke_agent support-bot")
    assert span.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert span.attributes["gen_ai.agent.name"] == "support-bot"
    assert len(span.attributes["pharos.request_id"]) == 16


def test_sync_generator_span_covers_the_whole_iteration(sdk: MemorySDK) -> None:
    @pharos.span("stream words")
    def words(n: int):
        for i in range(n):
            with pharos.span(f"inner {i}"):
                pass
            yield i
        return "done"

    assert inspect.isgeneratorfunction(words)
    gen = words(3)
    assert sdk.spans() == []  # nothing runs before the first next()
    assert list(gen) == [0, 1, 2]
    outer = sdk.span("stream words")
    for i in range(3):  # code between yields runs inside the generator's span
        assert sdk.span(f"inner {i}").parent.span_id == outer.context.span_id


def test_async_generator(sdk: MemorySDK) -> None:
    @pharos.llm(model="gpt-4o", system="openai")
    async def stream(prompt: str):
        for word in prompt.split():
            await asyncio.sleep(0)
            yield word
        pharos.current_span().record(input_tokens=5, output_tokens=2)

    assert inspect.isasyncgenfunction(stream)

    async def consume() -> list[str]:
        return [w async for w in stream("hello there")]

    assert asyncio.run(consume()) == ["hello", "there"]
    span = sdk.span("chat gpt-4o")
    assert span.kind == SpanKind.CLIENT
    assert span.attributes["gen_ai.usage.input_tokens"] == 5
    assert span.attributes["gen_ai.usage.output_tokens"] == 2


def test_generator_send_throw_and_close_behave_like_the_original(sdk: MemorySDK) -> None:
    @pharos.span
    def echo():
        received = []
        try:
            while True:
                try:
                    value = yield len(received)
                    received.append(value)
                except KeyError:
                    received.append("caught")
        finally:
            received.append("closed")

    gen = echo()
    assert next(gen) == 0
    assert gen.send("a") == 1
    assert gen.throw(KeyError("k")) == 2
    gen.close()
    span = sdk.span("test_generator_send_throw_and_close_behave_like_the_original.<locals>.echo")
    assert span.status.status_code == StatusCode.UNSET  # closing is not an error


def test_exception_from_a_generator_is_recorded_and_reraised(sdk: MemorySDK) -> None:
    @pharos.tool
    def rows():
        yield 1
        raise Boom("db went away")

    gen = rows()
    assert next(gen) == 1
    with pytest.raises(Boom, match="db went away"):
        next(gen)
    span = sdk.span("execute_tool rows")
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "Boom: db went away"


def test_async_generator_aclose(sdk: MemorySDK) -> None:
    @pharos.span("ticker")
    async def ticker():
        i = 0
        while True:
            yield i
            i += 1

    async def take_two() -> list[int]:
        agen = ticker()
        out = [await agen.__anext__(), await agen.__anext__()]
        await agen.aclose()
        return out

    assert asyncio.run(take_two()) == [0, 1]
    assert sdk.span("ticker").end_time is not None


# --- exceptions ----------------------------------------------------------------------------------


def test_exceptions_pass_through_unchanged_and_are_recorded(sdk: MemorySDK) -> None:
    original = Boom("tool exploded")

    @pharos.tool
    def explode() -> None:
        raise original

    with pytest.raises(Boom) as caught:
        explode()
    assert caught.value is original
    span = sdk.span("execute_tool explode")
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "Boom: tool exploded"
    assert span.attributes["error.type"].endswith("Boom")
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "tests.sdk.test_decorators.Boom"
    assert event.attributes["exception.message"] == "tool exploded"
    assert "raise original" in event.attributes["exception.stacktrace"]


def test_async_exception_and_context_manager_exception(sdk: MemorySDK) -> None:
    @pharos.agent
    async def fails() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError):
        asyncio.run(fails())
    with pytest.raises(ZeroDivisionError), pharos.span("division"):
        1 / 0  # noqa: B018
    assert sdk.span("invoke_agent fails").status.status_code == StatusCode.ERROR
    assert sdk.span("division").status.description == "ZeroDivisionError: division by zero"


def test_an_exception_with_a_broken_str_is_still_reraised(sdk: MemorySDK) -> None:
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    @pharos.tool
    def weird() -> None:
        raise Weird()

    with pytest.raises(Weird):
        weird()
    assert sdk.span("execute_tool weird").status.status_code == StatusCode.ERROR


# --- forms: with and without parentheses, context managers, nesting ----------------------------


def test_decorator_forms(sdk: MemorySDK) -> None:
    @pharos.tool
    def a() -> int:
        return 1

    @pharos.tool()
    def b() -> int:
        return 2

    @pharos.tool("lookup")
    def c() -> int:
        return 3

    @pharos.tool(name="fetch", description="Fetch a page", call_id="call_1")
    def d() -> int:
        return 4

    @pharos.agent
    def e() -> int:
        return 5

    @pharos.span
    def f() -> int:
        return 6

    @pharos.llm
    def g() -> int:
        return 7

    assert [a(), b(), c(), d(), e(), f(), g()] == [1, 2, 3, 4, 5, 6, 7]
    names = {s.name for s in sdk.spans()}
    assert names == {
        "execute_tool a",
        "execute_tool b",
        "execute_tool lookup",
        "execute_tool fetch",
        "invoke_agent e",
        "test_decorator_forms.<locals>.f",
        "chat",
    }
    fetch = sdk.span("execute_tool fetch")
    assert fetch.attributes["gen_ai.tool.description"] == "Fetch a page"
    assert fetch.attributes["gen_ai.tool.call.id"] == "call_1"


def test_methods_static_and_class_methods(sdk: MemorySDK) -> None:
    class Agent:
        factor = 10

        @pharos.tool
        def scale(self, x: int) -> int:
            return x * self.factor

        @pharos.tool
        @staticmethod
        def double(x: int) -> int:
            return 2 * x

        @pharos.tool
        @classmethod
        def triple(cls, x: int) -> int:
            return 3 * x

    agent = Agent()
    assert (agent.scale(2), Agent.double(2), Agent.triple(2)) == (20, 4, 6)
    assert {s.name for s in sdk.spans()} == {
        "execute_tool scale",
        "execute_tool double",
        "execute_tool triple",
    }


def test_nested_spans_form_a_tree_and_children_carry_the_agent(sdk: MemorySDK) -> None:
    @pharos.tool
    def search(q: str) -> str:
        return q

    @pharos.agent(name="planner", id="agent-7", conversation_id="conv-1")
    def plan() -> None:
        search("docs")
        with pharos.llm(model="gpt-4o-mini", system="openai", temperature=0.2) as call:
            call.record(input_tokens=120, output_tokens=30)

    plan()
    root = sdk.span("invoke_agent planner")
    tool = sdk.span("execute_tool search")
    chat = sdk.span("chat gpt-4o-mini")
    assert root.parent is None
    assert tool.parent.span_id == root.context.span_id
    assert chat.parent.span_id == root.context.span_id
    assert {tool.context.trace_id, chat.context.trace_id} == {root.context.trace_id}
    assert root.attributes["gen_ai.agent.id"] == "agent-7"
    assert root.attributes["gen_ai.conversation.id"] == "conv-1"
    for child in (tool, chat):
        assert child.attributes["gen_ai.agent.name"] == "planner"
    assert chat.attributes["gen_ai.request.temperature"] == 0.2


def test_llm_context_manager_records_genai_attributes(sdk: MemorySDK) -> None:
    with pharos.llm(model="gpt-4o-mini", system="openai") as call:
        call.record(
            input_tokens=100,
            output_tokens=20,
            cached_input_tokens=64,
            response_model="gpt-4o-mini-2024-07-18",
            finish_reasons=["stop"],
            response_id="chatcmpl-1",
            cost_usd=0.0012,
        )
    span = sdk.span("chat gpt-4o-mini")
    assert span.kind == SpanKind.CLIENT
    assert dict(span.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 20,
        "gen_ai.usage.cache_read.input_tokens": 64,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.usage.cost": 0.0012,
    }


@dataclass
class _Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass
class _Choice:
    finish_reason: str


@dataclass
class _OpenAIResponse:
    id: str
    model: str
    usage: _Usage
    choices: list[_Choice]


def test_usage_is_read_from_openai_and_anthropic_shaped_responses(sdk: MemorySDK) -> None:
    @pharos.llm(system="openai")
    def openai_call() -> _OpenAIResponse:
        return _OpenAIResponse("chatcmpl-9", "gpt-4o-2024-08-06", _Usage(50, 7), [_Choice("stop")])

    @pharos.llm(model="claude-3-5-haiku", system="anthropic")
    def anthropic_call() -> dict[str, Any]:
        return {
            "id": "msg_1",
            "model": "claude-3-5-haiku-20241022",
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 30, "output_tokens": 4, "cache_read_input_tokens": 10},
        }

    openai_call()
    anthropic_call()
    oa = sdk.span("chat gpt-4o-2024-08-06")  # renamed once the model is known
    assert oa.attributes["gen_ai.usage.input_tokens"] == 50
    assert oa.attributes["gen_ai.usage.output_tokens"] == 7
    assert oa.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    an = sdk.span("chat claude-3-5-haiku")
    assert an.attributes["gen_ai.usage.input_tokens"] == 30
    assert an.attributes["gen_ai.usage.cache_read.input_tokens"] == 10
    assert an.attributes["gen_ai.response.model"] == "claude-3-5-haiku-20241022"


def test_async_context_managers_and_handles(sdk: MemorySDK) -> None:
    async def main() -> tuple[str | None, str | None]:
        async with pharos.agent(name="async-bot") as run:
            run.set("ticket.priority", "high")
            run.event("escalated", {"to": "tier-2"})
            async with pharos.tool("lookup") as call:
                call.set("rows", 3)
            return run.trace_id, run.span_id

    trace_id, span_id = asyncio.run(main())
    root = sdk.span("invoke_agent async-bot")
    assert trace_id == format(root.context.trace_id, "032x")
    assert span_id == format(root.context.span_id, "016x")
    assert root.attributes["ticket.priority"] == "high"
    assert root.events[0].name == "escalated"
    assert sdk.span("execute_tool lookup").attributes["rows"] == 3


def test_span_kind_maps_to_openinference(sdk: MemorySDK) -> None:
    with pharos.span("retrieve", kind="retriever", attributes={"top_k": 4}):
        pass
    span = sdk.span("retrieve")
    assert span.attributes == {"openinference.span.kind": "RETRIEVER", "top_k": 4}


# --- content capture -----------------------------------------------------------------------------


def test_content_is_not_captured_by_default(sdk: MemorySDK) -> None:
    @pharos.tool
    def echo(text: str) -> str:
        return text

    echo("private conversation")
    assert "gen_ai.tool.call.arguments" not in sdk.span("execute_tool echo").attributes


def test_content_capture_truncates_and_redacts(make_sdk: Any) -> None:
    sdk = make_sdk(capture_content=True, max_content_length=80)

    @pharos.tool
    def lookup(order_id: str, api_key: str) -> dict[str, str]:
        return {"order_id": order_id, "note": "x" * 200}

    @pharos.agent(name="bot")
    def run(self_: Any = None) -> str:
        lookup("A1", api_key="sk-abcdefghijklmnopqrstuvwxyz")
        return "ok"

    run()
    tool = sdk.span("execute_tool lookup")
    assert tool.attributes["gen_ai.tool.call.arguments"] == (
        '{"order_id": "A1", "api_key": "[REDACTED]"}'
    )
    result = tool.attributes["gen_ai.tool.call.result"]
    assert len(result) == 80 and result.endswith("chars]")
    assert sdk.span("invoke_agent bot").attributes["output.value"] == "ok"


def test_per_decorator_capture_overrides_the_default(make_sdk: Any) -> None:
    sdk = make_sdk(capture_content=True)

    @pharos.tool(capture_content=False)
    def secret_tool(text: str) -> str:
        return text

    with pharos.llm(model="gpt-4o-mini") as call:
        call.record(input=[{"role": "user", "content": "hi"}], output="hello")
    secret_tool("hidden")
    assert "gen_ai.tool.call.arguments" not in sdk.span("execute_tool secret_tool").attributes
    chat = sdk.span("chat gpt-4o-mini")
    assert chat.attributes["gen_ai.input.messages"] == '[{"role": "user", "content": "hi"}]'
    assert chat.attributes["gen_ai.output.messages"] == "hello"


# --- never in the way ----------------------------------------------------------------------------


def test_before_init_everything_works_and_records_nothing() -> None:
    @pharos.agent(name="early")
    def early(x: int) -> int:
        with pharos.llm(model="m") as call:
            call.record(input_tokens=1, output_tokens="lots", response=object())
            call.set("k", object())
            assert not call.recording and call.trace_id is None
        pharos.current_span().set("x", 1)
        return x + 1

    assert early(1) == 2
    assert pharos.stats() == {}
    assert pharos.flush() and pharos.shutdown()


def test_after_shutdown_decorators_keep_working(sdk: MemorySDK) -> None:
    @pharos.tool
    def t() -> int:
        return 1

    t()
    assert len(sdk.spans()) == 1
    assert pharos.shutdown()
    assert t() == 1
    assert len(sdk.span_exporter.get_finished_spans()) == 1


def test_bad_values_never_raise(sdk: MemorySDK) -> None:
    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    with pharos.span("odd values") as s:
        s.set("obj", Unprintable())
        s.set("nested", {"a": [1, {"b": Unprintable()}]})
        s.set("huge", 10**40)
        s.set("mixed", [1, "a", None])
        s.set("nan", float("nan"))
        s.set(None, 1)  # type: ignore[arg-type]
        s.set_attributes({"ok": True})
        s.event("evt", {"bad": Unprintable()})
        with pharos.llm() as call:
            call.record(input_tokens=-5, output_tokens=1.5, cost_usd="free", response=Unprintable())
    span = sdk.span("odd values")
    assert span.attributes["obj"] == "<unrepresentable Unprintable>"
    assert span.attributes["nested"] == '{"a": [1, {"b": "<unrepresentable Unprintable>"}]}'
    assert span.attributes["huge"] == str(10**40)
    assert span.attributes["mixed"] == '[1, "a", null]'
    assert span.attributes["ok"] is True
    chat = sdk.span("chat")
    assert "gen_ai.usage.input_tokens" not in chat.attributes
    assert "gen_ai.usage.output_tokens" not in chat.attributes


def test_decorating_a_non_function_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match="decorates a function"):
        pharos.tool()(42)  # type: ignore[arg-type]


def test_current_span_inside_auto_instrumented_spans(sdk: MemorySDK) -> None:
    from opentelemetry import trace

    tracer = trace.get_tracer("someone-else")
    with tracer.start_as_current_span("foreign"):
        pharos.current_span().set("annotated", "yes")
    assert pharos.current_span().recording is False
    assert sdk.span("foreign").attributes["annotated"] == "yes"
