"""``@pharos.agent``, ``@pharos.llm``, ``@pharos.tool`` and ``@pharos.span``: decorators and
context managers that open OpenTelemetry spans with GenAI semantic-convention attributes.

Works on sync and async functions and on sync and async generators; keeps the wrapped
function's signature (``functools.wraps``) and lets its exceptions through unchanged, after
recording them on the span (an ``exception`` event and ERROR status). Before ``pharos.init()``
(or after ``shutdown()``) spans go to whatever tracer provider OpenTelemetry has globally —
usually none, so they cost almost nothing and record nothing. Telemetry failures are logged once
and never raised.

Only the OpenTelemetry *API* is imported here, so ``import pharos`` stays light.
"""

from __future__ import annotations

import functools
import inspect
import traceback
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, ClassVar, TypeVar, cast, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode

from pharos.sdk import context as ctx
from pharos.sdk.state import holder, internal_error
from pharos.sdk.values import as_cost, as_count, to_attribute, to_json_text, usage_from_response

F = TypeVar("F", bound=Callable[..., Any])

AGENT, LLM, TOOL, SPAN = "agent", "llm", "tool", "span"
_OPENINFERENCE_KINDS = {
    "chain": "CHAIN",
    "retriever": "RETRIEVER",
    "embedding": "EMBEDDING",
    "reranker": "RERANKER",
    "guardrail": "GUARDRAIL",
    "evaluator": "EVALUATOR",
    "prompt": "PROMPT",
    "agent": "AGENT",
    "llm": "LLM",
    "tool": "TOOL",
}
_proxy: list[trace.Tracer] = []


def _version() -> str:
    from pharos import __version__

    return __version__


def _tracer() -> trace.Tracer:
    rt = holder.runtime
    if rt is not None:
        return rt.tracer
    if not _proxy:  # the global API's proxy: the user's own provider, or a no-op
        _proxy.append(trace.get_tracer("pharos", _version()))
    return _proxy[0]


def _capture_settings(explicit: bool | None) -> tuple[bool, int]:
    rt = holder.runtime
    if rt is None:
        return False, 4000
    cfg = rt.config
    return (cfg.capture_content if explicit is None else explicit), cfg.max_content_length


def _redact(value: Any) -> Any:
    rt = holder.runtime
    return rt.redactor.redact_structure(value) if rt is not None else value


# --- handles: what ``with ... as x`` yields and ``pharos.current_span()`` returns ----------------


class SpanHandle:
    """A span you can annotate. Every method is safe to call in any state (before ``init()``,
    after the span ended, with odd values) and never raises."""

    __slots__ = ("_capture", "_limit", "_span")
    INPUT_KEY: ClassVar[str] = "input.value"
    OUTPUT_KEY: ClassVar[str] = "output.value"

    def __init__(self, span: Span, capture: bool = False, limit: int = 4000) -> None:
        self._span = span
        self._capture = capture
        self._limit = limit

    @property
    def recording(self) -> bool:
        """True when this span is being recorded (Pharos is initialised and sampling it)."""
        try:
            return bool(self._span.is_recording())
        except Exception:
            return False

    @property
    def trace_id(self) -> str | None:
        """The trace id as 32 hex characters (None when not recording)."""
        sc = self._span.get_span_context()
        return format(sc.trace_id, "032x") if sc.is_valid else None

    @property
    def span_id(self) -> str | None:
        sc = self._span.get_span_context()
        return format(sc.span_id, "016x") if sc.is_valid else None

    def set(self, key: str, value: Any) -> None:
        """Set one attribute. Values that OpenTelemetry cannot hold are sent as JSON text."""
        try:
            if self._span.is_recording():
                converted = to_attribute(value, self._limit)
                if converted is not None:
                    self._span.set_attribute(str(key), converted)
        except Exception as exc:
            internal_error("set attribute", exc)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        try:
            for key, value in attributes.items():
                self.set(key, value)
        except Exception as exc:
            internal_error("set attributes", exc)

    def event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        """Add a timestamped event to the span."""
        try:
            if self._span.is_recording():
                converted = {}
                for key, value in (attributes or {}).items():
                    attr = to_attribute(value, self._limit)
                    if attr is not None:
                        converted[str(key)] = attr
                self._span.add_event(str(name), converted)
        except Exception as exc:
            internal_error("add event", exc)

    def _content(self, key: str, value: Any) -> None:
        try:
            if self._capture and self._span.is_recording():
                self._span.set_attribute(key, to_json_text(_redact(value), self._limit))
        except Exception as exc:
            internal_error("capture content", exc)

    def set_input(self, value: Any) -> None:
        """Record the input (only when content capture is on; truncated, redacted)."""
        self._content(self.INPUT_KEY, value)

    def set_output(self, value: Any) -> None:
        """Record the output (only when content capture is on; truncated, redacted)."""
        self._content(self.OUTPUT_KEY, value)

    def record_exception(self, exc: BaseException) -> None:
        """Record ``exc`` (an ``exception`` event) and mark the span as failed."""
        _record_error(self._span, exc)

    def set_error(self, message: str) -> None:
        """Mark the span as failed without an exception."""
        try:
            if self._span.is_recording():
                self._span.set_status(Status(StatusCode.ERROR, str(message)))
        except Exception as exc:
            internal_error("set error", exc)


class AgentRun(SpanHandle):
    """Yielded by ``with pharos.agent(...)``."""

    __slots__ = ()


class ToolCall(SpanHandle):
    """Yielded by ``with pharos.tool(...)``; input/output are the call's arguments/result."""

    __slots__ = ()
    INPUT_KEY = "gen_ai.tool.call.arguments"
    OUTPUT_KEY = "gen_ai.tool.call.result"


class LLMCall(SpanHandle):
    """Yielded by ``with pharos.llm(...)``: record what the model said it used."""

    __slots__ = ("_model_known", "_operation")
    INPUT_KEY = "gen_ai.input.messages"
    OUTPUT_KEY = "gen_ai.output.messages"

    def __init__(
        self,
        span: Span,
        capture: bool = False,
        limit: int = 4000,
        operation: str = "chat",
        model_known: bool = True,
    ) -> None:
        super().__init__(span, capture, limit)
        self._operation = operation
        self._model_known = model_known

    def record(
        self,
        *,
        input_tokens: Any = None,
        output_tokens: Any = None,
        cached_input_tokens: Any = None,
        model: str | None = None,
        response_model: str | None = None,
        finish_reasons: Any = None,
        response_id: str | None = None,
        cost_usd: Any = None,
        input: Any = None,
        output: Any = None,
        response: Any = None,
        **attributes: Any,
    ) -> None:
        """Record usage and results. ``response=`` takes an OpenAI or Anthropic response object
        (or the same shape as a dict) and reads tokens, model, id and finish reasons from it;
        explicit arguments win. ``input``/``output`` (messages) are kept only when content
        capture is on. Values that are not valid counts are ignored."""
        try:
            span = self._span
            if not span.is_recording():
                return
            found = usage_from_response(response) if response is not None else {}
            if model:
                span.set_attribute("gen_ai.request.model", str(model))
                if not self._model_known:
                    span.update_name(f"{self._operation} {model}")
                    self._model_known = True
            resp_model = response_model or found.get("response_model")
            if resp_model:
                span.set_attribute("gen_ai.response.model", str(resp_model))
                if not self._model_known:
                    span.update_name(f"{self._operation} {resp_model}")
                    self._model_known = True
            counts = (
                ("gen_ai.usage.input_tokens", input_tokens, "input_tokens"),
                ("gen_ai.usage.output_tokens", output_tokens, "output_tokens"),
                (
                    "gen_ai.usage.cache_read.input_tokens",
                    cached_input_tokens,
                    "cached_input_tokens",
                ),
            )
            for key, given, found_key in counts:
                value = given if given is not None else found.get(found_key)
                count = as_count(value)
                if count is not None:
                    span.set_attribute(key, count)
            reasons = finish_reasons if finish_reasons is not None else found.get("finish_reasons")
            if isinstance(reasons, str):
                reasons = [reasons]
            if reasons:
                span.set_attribute("gen_ai.response.finish_reasons", [str(r) for r in reasons])
            rid = response_id or found.get("response_id")
            if rid:
                span.set_attribute("gen_ai.response.id", str(rid))
            cost = as_cost(cost_usd)
            if cost is not None:
                span.set_attribute("gen_ai.usage.cost", cost)
            if input is not None:
                self.set_input(input)
            if output is not None:
                self.set_output(output)
            if attributes:
                self.set_attributes(attributes)
        except Exception as exc:
            internal_error("llm record", exc)


_NOOP_HANDLE = SpanHandle(INVALID_SPAN)
current_handle: ContextVar[SpanHandle | None] = ContextVar("pharos_span", default=None)


def current_span() -> SpanHandle:
    """The innermost span of this task: a Pharos span's handle (an :class:`LLMCall` inside
    ``@pharos.llm``), or any other OpenTelemetry span (from auto-instrumentation). Safe to call
    anywhere; outside a span its methods do nothing."""
    try:
        handle = current_handle.get()
        span = trace.get_current_span()
        if handle is not None and handle._span is span:
            return handle
        if span is INVALID_SPAN:
            return _NOOP_HANDLE
        capture, limit = _capture_settings(None)
        return SpanHandle(span, capture, limit)
    except Exception as exc:
        internal_error("current span", exc)
        return _NOOP_HANDLE


# --- recording ----------------------------------------------------------------------------------


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _record_error(span: Span, exc: BaseException) -> None:
    """An ``exception`` event (type, message, stack trace) and ERROR status. Built here rather
    than with ``Span.record_exception`` so an exception whose ``str()`` fails is still recorded."""
    try:
        if not span.is_recording():
            return
        name = type(exc).__name__
        try:
            message = str(exc)
        except Exception:
            message = f"<unprintable {name}>"
        try:
            stack = "".join(traceback.format_exception(exc))
        except Exception:
            stack = ""
        type_name = _type_name(exc)
        span.add_event(
            "exception",
            {
                "exception.type": type_name,
                "exception.message": message,
                "exception.stacktrace": stack,
            },
        )
        span.set_attribute("error.type", type_name)
        span.set_status(Status(StatusCode.ERROR, f"{name}: {message}" if message else name))
    except Exception as inner:
        internal_error("record exception", inner)


def _is_failure(exc: BaseException) -> bool:
    if isinstance(exc, GeneratorExit):
        return False
    return not (isinstance(exc, SystemExit) and exc.code in (0, None))


_attach = otel_context.attach
_detach = otel_context.detach
_in_context = trace.set_span_in_context


class _Active:
    """One execution of an instrumented block: its span and the context it activates."""

    __slots__ = (
        "agent",
        "handle",
        "inst",
        "recording",
        "request_id",
        "span",
        "t_agent",
        "t_handle",
        "t_otel",
        "t_rid",
    )

    def __init__(self, inst: Instrument, span: Span, handle: SpanHandle, recording: bool) -> None:
        self.inst = inst
        self.span = span
        self.handle = handle
        self.recording = recording
        self.agent = inst.name if inst.kind == AGENT else None
        self.request_id: str | None = None
        self.t_otel: object | None = None
        self.t_handle: Token[SpanHandle | None] | None = None
        self.t_agent: Token[str | None] | None = None
        self.t_rid: Token[str | None] | None = None

    def activate(self) -> None:
        try:
            self.t_otel = _attach(_in_context(self.span))
            self.t_handle = current_handle.set(self.handle)
            if self.agent is not None:
                self.t_agent = ctx.current_agent.set(self.agent)
                if self.request_id is not None:
                    self.t_rid = ctx.current_request_id.set(self.request_id)
        except Exception as exc:
            internal_error("activate span", exc)

    def deactivate(self) -> None:
        try:
            if self.t_rid is not None:
                ctx.current_request_id.reset(self.t_rid)
                self.t_rid = None
            if self.t_agent is not None:
                ctx.current_agent.reset(self.t_agent)
                self.t_agent = None
            if self.t_handle is not None:
                current_handle.reset(self.t_handle)
                self.t_handle = None
        except Exception as exc:  # a token from another context: leave it be
            internal_error("deactivate span", exc)
        if self.t_otel is not None:
            _detach(self.t_otel)  # type: ignore[arg-type]  # logs (never raises) on a bad token
            self.t_otel = None

    def item(self, value: Any) -> None:
        """A value yielded by an instrumented generator."""
        if self.inst.kind == LLM and isinstance(self.handle, LLMCall):
            try:
                found = usage_from_response(value)
                if "input_tokens" in found or "output_tokens" in found:
                    self.handle.record(response=value)
            except Exception as exc:
                internal_error("generator item", exc)

    def end(self, exc: BaseException | None, result: Any = None, has_result: bool = False) -> None:
        try:
            span = self.span
            if self.recording:
                if exc is not None:
                    if _is_failure(exc):
                        _record_error(span, exc)
                elif has_result:
                    handle = self.handle
                    if (
                        self.inst.kind == LLM
                        and isinstance(handle, LLMCall)
                        and usage_from_response(result)
                    ):
                        handle.record(response=result)
                    if result is not None and handle._capture:
                        handle.set_output(result)
            span.end()
        except Exception as err:
            internal_error("end span", err)

    def close(
        self, exc: BaseException | None, result: Any = None, has_result: bool = False
    ) -> None:
        self.deactivate()
        self.end(exc, result, has_result)


class Instrument:
    """What ``pharos.agent(...)``, ``pharos.llm(...)``, ``pharos.tool(...)`` and
    ``pharos.span(...)`` return: a decorator and a (sync or async) context manager.

    Use one object per ``with`` block (as ``with pharos.span("x"):`` naturally does)."""

    __slots__ = (
        "_fn_sig",
        "_stack",
        "attributes",
        "capture",
        "handle_cls",
        "kind",
        "name",
        "operation",
        "span_kind",
        "span_name",
    )

    def __init__(
        self,
        kind: str,
        name: str | None,
        attributes: dict[str, Any],
        *,
        operation: str = "",
        capture: bool | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.operation = operation
        self.capture = capture
        self.attributes = attributes
        self.handle_cls: type[SpanHandle] = {
            AGENT: AgentRun,
            LLM: LLMCall,
            TOOL: ToolCall,
        }.get(kind, SpanHandle)
        self.span_kind = SpanKind.CLIENT if kind == LLM else SpanKind.INTERNAL
        self.span_name = self._span_name()
        self._stack: list[_Active] = []
        self._fn_sig: inspect.Signature | None = None

    def _span_name(self) -> str:
        if self.kind == AGENT:
            return f"invoke_agent {self.name or 'agent'}"
        if self.kind == TOOL:
            return f"execute_tool {self.name or 'tool'}"
        if self.kind == LLM:
            model = self.attributes.get("gen_ai.request.model")
            return f"{self.operation} {model}" if model else self.operation
        return self.name or "span"

    def _bound_to(self, fn: Callable[..., Any]) -> Instrument:
        """A copy named after ``fn`` when no name was given, with its signature cached."""
        name = self.name
        attrs = dict(self.attributes)
        if name is None:
            name = getattr(fn, "__qualname__" if self.kind == SPAN else "__name__", None) or "fn"
            if self.kind == AGENT:
                attrs["gen_ai.agent.name"] = name
            elif self.kind == TOOL:
                attrs["gen_ai.tool.name"] = name
        if self.kind == TOOL and "gen_ai.tool.description" not in attrs:
            doc = inspect.getdoc(fn)
            if doc:
                attrs["gen_ai.tool.description"] = doc.strip().splitlines()[0][:500]
        bound = Instrument(self.kind, name, attrs, operation=self.operation, capture=self.capture)
        try:
            bound._fn_sig = inspect.signature(fn)
        except (TypeError, ValueError):
            bound._fn_sig = None
        return bound

    # --- starting -------------------------------------------------------------------------

    def _inputs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        sig = self._fn_sig
        if sig is None:
            return {"args": list(args), "kwargs": kwargs}
        try:
            bound = sig.bind_partial(*args, **kwargs)
        except TypeError:
            return {"args": list(args), "kwargs": kwargs}
        return {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}

    def _start(
        self,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        activate: bool = True,
    ) -> _Active:
        try:
            attrs = self.attributes
            if self.kind != AGENT:
                agent = ctx.current_agent.get()
                if agent is not None and "gen_ai.agent.name" not in attrs:
                    attrs = {**attrs, "gen_ai.agent.name": agent}
            span = _tracer().start_span(self.span_name, kind=self.span_kind, attributes=attrs)
            recording = span.is_recording()
            if recording:
                capture, limit = _capture_settings(self.capture)
            else:
                capture, limit = False, 4000
            if self.kind == LLM:
                handle: SpanHandle = LLMCall(
                    span,
                    capture,
                    limit,
                    self.operation,
                    "gen_ai.request.model" in self.attributes,
                )
            else:
                handle = self.handle_cls(span, capture, limit)
            active = _Active(self, span, handle, recording)
            if self.kind == AGENT:
                rid = ctx.current_request_id.get()
                if rid is None:
                    rid = ctx.new_request_id()
                    active.request_id = rid
                if recording:
                    span.set_attribute("pharos.request_id", rid)
            if capture and args is not None:
                handle.set_input(self._inputs(args, kwargs or {}))
        except Exception as exc:
            internal_error("start span", exc)
            active = _Active(self, INVALID_SPAN, _NOOP_HANDLE, False)
        if activate:
            active.activate()
        return active

    # --- context manager ------------------------------------------------------------------

    def __enter__(self) -> Any:
        active = self._start()
        self._stack.append(active)
        return active.handle

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stack:
            self._stack.pop().close(exc)

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # --- decorator ------------------------------------------------------------------------

    def __call__(self, fn: F) -> F:
        if isinstance(fn, staticmethod | classmethod):
            wrapped: Any = type(fn)(self(fn.__func__))
            return cast(F, wrapped)
        if not callable(fn):
            raise TypeError(f"pharos.{self.kind}() decorates a function, not {type(fn).__name__}")
        return cast(F, _decorate(self._bound_to(fn), fn))


def _decorate(inst: Instrument, fn: Callable[..., Any]) -> Any:
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def async_gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            agen = fn(*args, **kwargs)
            active = inst._start(args, kwargs, activate=False)
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                active.activate()
                try:
                    if thrown is not None:
                        item = await agen.athrow(thrown)
                    else:
                        item = await agen.asend(sent)
                except StopAsyncIteration:
                    active.close(None)
                    return
                except BaseException as exc:
                    active.close(exc)
                    raise
                active.deactivate()
                active.item(item)
                thrown = None
                try:
                    sent = yield item
                except GeneratorExit:
                    try:
                        await agen.aclose()
                    except BaseException as exc:
                        active.end(exc)
                        raise
                    active.end(None)
                    raise
                except BaseException as exc:
                    thrown = exc

        return async_gen_wrapper

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            gen = fn(*args, **kwargs)
            active = inst._start(args, kwargs, activate=False)
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                active.activate()
                try:
                    item = gen.throw(thrown) if thrown is not None else gen.send(sent)
                except StopIteration as stop:
                    active.close(None, stop.value, stop.value is not None)
                    return stop.value
                except BaseException as exc:
                    active.close(exc)
                    raise
                active.deactivate()
                active.item(item)
                thrown = None
                try:
                    sent = yield item
                except GeneratorExit:
                    try:
                        gen.close()
                    except BaseException as exc:
                        active.end(exc)
                        raise
                    active.end(None)
                    raise
                except BaseException as exc:
                    thrown = exc

        return gen_wrapper

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            active = inst._start(args, kwargs)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                active.close(exc)
                raise
            active.close(None, result, True)
            return result

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        active = inst._start(args, kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            active.close(exc)
            raise
        active.close(None, result, True)
        return result

    return wrapper


# --- the public constructors --------------------------------------------------------------------


def _attrs(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        converted = to_attribute(value)
        if converted is not None:
            out[str(key)] = converted
    return out


def _split(name_or_fn: Any, name: str | None) -> tuple[Callable[..., Any] | None, str | None]:
    if callable(name_or_fn) or isinstance(name_or_fn, staticmethod | classmethod):
        return name_or_fn, name
    if name_or_fn is not None:
        return None, str(name_or_fn)
    return None, name


@overload
def agent(name_or_fn: F, /) -> F: ...
@overload
def agent(
    name_or_fn: str | None = None,
    /,
    *,
    name: str | None = None,
    id: str | None = None,
    description: str | None = None,
    conversation_id: str | None = None,
    capture_content: bool | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Instrument: ...
def agent(
    name_or_fn: Any = None,
    /,
    *,
    name: str | None = None,
    id: str | None = None,
    description: str | None = None,
    conversation_id: str | None = None,
    capture_content: bool | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Any:
    """An agent run: ``gen_ai.operation.name=invoke_agent``, ``gen_ai.agent.name``. Logs and
    child spans inside it carry the agent's name and a request id.

    ``@pharos.agent``, ``@pharos.agent(name="support-bot")`` or
    ``with pharos.agent(name="support-bot") as run: ...``."""
    try:
        fn, name = _split(name_or_fn, name)
        attrs = {"gen_ai.operation.name": "invoke_agent", **_attrs(attributes)}
        if name:
            attrs["gen_ai.agent.name"] = name
        for key, value in (
            ("gen_ai.agent.id", id),
            ("gen_ai.agent.description", description),
            ("gen_ai.conversation.id", conversation_id),
        ):
            if value is not None:
                attrs[key] = str(value)
        inst = Instrument(AGENT, name, attrs, capture=capture_content)
        return inst(fn) if fn is not None else inst
    except TypeError:
        raise
    except Exception as exc:
        internal_error("agent()", exc)
        return name_or_fn if callable(name_or_fn) else Instrument(AGENT, None, {})


@overload
def tool(name_or_fn: F, /) -> F: ...
@overload
def tool(
    name_or_fn: str | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    call_id: str | None = None,
    capture_content: bool | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Instrument: ...
def tool(
    name_or_fn: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    call_id: str | None = None,
    capture_content: bool | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Any:
    """A tool call: ``gen_ai.operation.name=execute_tool``, ``gen_ai.tool.name`` (the function's
    name by default), its docstring's first line as the description. Arguments and result are
    captured when content capture is on.

    ``@pharos.tool``, ``@pharos.tool(name="search")`` or ``with pharos.tool("search") as t:``."""
    try:
        fn, name = _split(name_or_fn, name)
        attrs = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.type": "function",
            **_attrs(attributes),
        }
        if name:
            attrs["gen_ai.tool.name"] = name
        if description is not None:
            attrs["gen_ai.tool.description"] = str(description)
        if call_id is not None:
            attrs["gen_ai.tool.call.id"] = str(call_id)
        inst = Instrument(TOOL, name, attrs, capture=capture_content)
        return inst(fn) if fn is not None else inst
    except TypeError:
        raise
    except Exception as exc:
        internal_error("tool()", exc)
        return name_or_fn if callable(name_or_fn) else Instrument(TOOL, None, {})


@overload
def llm(model_or_fn: F, /) -> F: ...
@overload
def llm(
    model_or_fn: str | None = None,
    /,
    *,
    model: str | None = None,
    system: str | None = None,
    provider: str | None = None,
    operation: str = "chat",
    temperature: float | None = None,
    max_tokens: int | None = None,
    top_p: float | None = None,
    capture_content: bool | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Instrument: ...
def llm(
    model_or_fn: Any = None,
    /,
    *,
    model: str | None = None,
    system: str | None = None,
    provider: str | None = None,
    operation: str = "chat",
    temperature: float | None = None,
    max_tokens: int | None = None,
    top_p: float | None = None,
    capture_content: bool | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Any:
    """A model call: ``gen_ai.operation.name`` (``chat`` by default; ``text_completion``,
    ``embeddings``, ``generate_content``), ``gen_ai.request.model``, ``gen_ai.provider.name``
    (and the older ``gen_ai.system``). Record usage with ``call.record(input_tokens=...,
    output_tokens=...)`` or ``call.record(response=resp)``; a decorated function's return value
    is read for usage automatically when it looks like an OpenAI or Anthropic response.

    ``with pharos.llm(model="gpt-4o-mini", system="openai") as call: ...`` or
    ``@pharos.llm(model="gpt-4o-mini", system="openai")``."""
    try:
        fn, model = _split(model_or_fn, model)
        vendor = provider or system
        attrs = {"gen_ai.operation.name": str(operation or "chat"), **_attrs(attributes)}
        if model:
            attrs["gen_ai.request.model"] = str(model)
        if vendor:
            attrs["gen_ai.provider.name"] = str(vendor)
            attrs["gen_ai.system"] = str(vendor)
        for key, value in (
            ("gen_ai.request.temperature", temperature),
            ("gen_ai.request.max_tokens", max_tokens),
            ("gen_ai.request.top_p", top_p),
        ):
            converted = to_attribute(value)
            if isinstance(converted, int | float) and not isinstance(converted, bool):
                attrs[key] = converted
        inst = Instrument(
            LLM, None, attrs, operation=str(operation or "chat"), capture=capture_content
        )
        return inst(fn) if fn is not None else inst
    except TypeError:
        raise
    except Exception as exc:
        internal_error("llm()", exc)
        return model_or_fn if callable(model_or_fn) else Instrument(LLM, None, {}, operation="chat")


@overload
def span(name_or_fn: F, /) -> F: ...
@overload
def span(
    name_or_fn: str | None = None,
    /,
    *,
    name: str | None = None,
    kind: str | None = None,
    capture_content: bool | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Instrument: ...
def span(
    name_or_fn: Any = None,
    /,
    *,
    name: str | None = None,
    kind: str | None = None,
    capture_content: bool | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Any:
    """Any other unit of work (retrieval, a chain step, a guardrail). ``kind=`` ("retriever",
    "chain", "embedding", "reranker", "guardrail", "evaluator") sets
    ``openinference.span.kind`` so Pharos classifies it.

    ``@pharos.span``, ``@pharos.span("retrieve", kind="retriever")`` or
    ``with pharos.span("retrieve") as s: ...``."""
    try:
        fn, name = _split(name_or_fn, name)
        attrs = _attrs(attributes)
        if kind:
            oi = _OPENINFERENCE_KINDS.get(str(kind).lower())
            if oi:
                attrs["openinference.span.kind"] = oi
        inst = Instrument(SPAN, name, attrs, capture=capture_content)
        return inst(fn) if fn is not None else inst
    except TypeError:
        raise
    except Exception as exc:
        internal_error("span()", exc)
        return name_or_fn if callable(name_or_fn) else Instrument(SPAN, None, {})
