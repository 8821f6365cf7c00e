"""Turning arbitrary Python values into what an OpenTelemetry attribute can hold (pure).

Nothing here raises: a value that cannot be represented becomes a short placeholder string.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

AttributeValue = str | bool | int | float | Sequence[str] | Sequence[bool] | Sequence[int]
_INT64 = 2**63


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    marker = f"…[truncated {len(text) - limit} chars]"
    return text[: max(0, limit - len(marker))] + marker


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def to_jsonable(value: Any, _depth: int = 0) -> Any:
    """A structure ``json.dumps`` accepts: dataclasses and pydantic models as dicts, sets as
    lists, bytes as a length note, anything else as its repr."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if _depth > 12:
        return _safe_repr(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v, _depth + 1) for v in value]
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    try:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return to_jsonable(dataclasses.asdict(value), _depth + 1)
        dump = getattr(value, "model_dump", None)  # pydantic v2 (OpenAI and Anthropic responses)
        if callable(dump):
            return to_jsonable(dump(), _depth + 1)
    except Exception:
        return _safe_repr(value)
    return _safe_repr(value)


def to_json_text(value: Any, limit: int) -> str:
    """Content (inputs, outputs, messages) as JSON text, truncated; a string is sent as is."""
    if isinstance(value, str):
        return truncate(value, limit)
    try:
        jsonable = to_jsonable(value)
        if isinstance(jsonable, str):  # an object shown by its repr
            return truncate(jsonable, limit)
        text = json.dumps(jsonable, ensure_ascii=False, default=_safe_repr)
    except Exception:
        text = _safe_repr(value)
    return truncate(text, limit)


def to_attribute(value: Any, limit: int = 4000) -> AttributeValue | None:
    """An OpenTelemetry attribute value for ``value``: primitives as they are, homogeneous
    sequences of primitives as sequences, anything else as (truncated) JSON text. None for
    None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else str(value)
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        return truncate(value, limit)
    if isinstance(value, list | tuple) and value:
        first = type(value[0])
        if first in (str, bool, int, float) and all(type(v) is first for v in value):
            if first is str:
                return [truncate(v, limit) for v in value]
            if first is int and not all(-_INT64 <= v < _INT64 for v in value):
                return [str(v) for v in value]
            return list(value)
    return to_json_text(value, limit)


def as_count(value: Any) -> int | None:
    """A token count: a non-negative integer (or integral float / digit string), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if 0 <= value < 2**32 else None
    if isinstance(value, float) and value.is_integer() and 0 <= value < 2**32:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
        return number if number < 2**32 else None
    return None


def as_cost(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and 0 <= number <= 1_000_000 else None


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def usage_from_response(response: Any) -> dict[str, Any]:
    """Token usage and response model from an LLM client's response: OpenAI
    (``usage.prompt_tokens``/``completion_tokens``, also the Responses API's
    ``input_tokens``/``output_tokens``), Anthropic (``usage.input_tokens``/``output_tokens``,
    ``cache_read_input_tokens``), or the same shapes as dicts. Missing parts are left out."""
    out: dict[str, Any] = {}
    if response is None:
        return out
    usage = _get(response, "usage")
    if usage is not None:
        for target, names in (
            ("input_tokens", ("input_tokens", "prompt_tokens")),
            ("output_tokens", ("output_tokens", "completion_tokens")),
        ):
            for name in names:
                count = as_count(_get(usage, name))
                if count is not None:
                    out[target] = count
                    break
        cached = as_count(_get(usage, "cache_read_input_tokens"))
        if cached is None:
            details = _get(usage, "prompt_tokens_details") or _get(usage, "input_tokens_details")
            cached = as_count(_get(details, "cached_tokens")) if details is not None else None
        if cached is not None:
            out["cached_input_tokens"] = cached
    model = _get(response, "model")
    if isinstance(model, str) and model:
        out["response_model"] = model
    response_id = _get(response, "id")
    if isinstance(response_id, str) and response_id:
        out["response_id"] = response_id
    reasons: list[str] = []
    choices = _get(response, "choices")
    if isinstance(choices, Sequence) and not isinstance(choices, str):
        for choice in choices[:16]:
            reason = _get(choice, "finish_reason")
            if isinstance(reason, str):
                reasons.append(reason)
    stop = _get(response, "stop_reason")
    if isinstance(stop, str):
        reasons.append(stop)
    if reasons:
        out["finish_reasons"] = reasons
    return out
