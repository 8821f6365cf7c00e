"""Pure parts of the gateway and the access room: reading usage from answers and streams,
relayed headers, the key redaction of log records."""

from __future__ import annotations

import logging

import httpx
import orjson

from pharos.server.access.gateway import _LlmCall, _response_headers, _SseScan, _usage
from pharos.server.access.middleware import install_log_redaction, redact

KEY = "phk_abcdefghIJKLMNOPqrstuvwxyz0123456789-_ABCDE"


def _event(kind: str, data: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


def test_responses_stream_usage_from_response_completed_in_any_chunking() -> None:
    usage = {"input_tokens": 13, "output_tokens": 9, "input_tokens_details": {"cached_tokens": 4}}
    big = "x" * 200_000  # a large final event (the whole output): more than a 64 KiB tail
    stream = (
        _event("response.created", {"response": {"model": "gpt-4o-mini-2024-07-18"}})
        + _event("response.output_text.delta", {"delta": "Hel"})
        + _event(
            "response.completed",
            {"response": {"model": "gpt-4o-mini-2024-07-18", "output": big, "usage": usage}},
        )
    )
    for size in (1, 7, 4096, len(stream)):
        scan = _SseScan()
        for i in range(0, len(stream), size):
            scan.feed(stream[i : i + size])
        scan.end()
        assert scan.usage == {"input": 13, "output": 9, "cached": 4, "total": 22}, size
        assert scan.model == "gpt-4o-mini-2024-07-18"


def test_chat_stream_usage_from_the_last_chunk_and_no_usage() -> None:
    chunk = {"model": "m-1", "choices": [{"delta": {"content": "hi"}}]}
    final = {"model": "m-1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    scan = _SseScan()
    scan.feed(b"data: " + orjson.dumps(chunk) + b"\n\ndata: " + orjson.dumps(final))
    scan.feed(b"\n\ndata: [DONE]\n\n")
    scan.end()
    assert scan.usage == {"input": 3, "output": 2, "cached": None, "total": 5}
    empty = _SseScan()
    empty.feed(b"data: not json\n\n: comment\n\n")
    empty.end()
    assert empty.usage is None and empty.model is None


def test_usage_of_json_answers() -> None:
    chat = {
        "model": "m",
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }
    assert _usage(orjson.dumps(chat)) == (
        {"input": 11, "output": 7, "cached": None, "total": 18},
        "m",
    )
    assert _usage(b"{not json") == (None, None)
    assert _usage(orjson.dumps({"model": "m"})) == (None, "m")


def test_llm_call_names_and_attributes_per_operation() -> None:
    chat = _LlmCall("chat/completions")
    body = chat.read_request({"model": "gpt-4o-mini", "stream": True, "max_tokens": 9})
    assert body is not None and orjson.loads(body)["stream_options"] == {"include_usage": True}
    assert chat.name("ignored") == "chat gpt-4o-mini" and chat.want_tokens == 9
    assert chat.attrs("gpt-4o-mini-x")["gen_ai.response.model"] == "gpt-4o-mini-x"
    emb = _LlmCall("embeddings")
    assert emb.read_request({"input": "x"}) is None
    assert emb.name("text-embedding-3-small") == "embeddings text-embedding-3-small"
    assert "openai.api.type" not in emb.attrs(None)
    resp = _LlmCall("responses")
    assert resp.read_request({"model": "o4", "stream": True, "max_output_tokens": 5}) is None
    attrs = resp.attrs(None)
    assert resp.name(None) == "chat o4" and attrs["openai.api.type"] == "responses"
    assert attrs["gen_ai.request.max_tokens"] == 5 and attrs["gen_ai.request.stream"] is True
    assert _LlmCall("chat/completions").name(None) == "chat"


def test_relayed_headers_drop_hop_by_hop_server_set_and_connection_listed() -> None:
    response = httpx.Response(
        200,
        headers=[
            ("date", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("server", "uvicorn"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("x-kept", "a"),
            ("x-kept", "b"),
            ("via", "1.1 lb"),
        ],
    )
    assert _response_headers(response) == {"x-kept": "a, b", "via": "1.1 lb, 1.1 pharos"}


def test_redact_and_log_records() -> None:
    assert redact(f"Bearer {KEY}") == "Bearer phk_abcdefgh…"
    assert redact("no key here") == "no key here"
    install_log_redaction()
    install_log_redaction()  # idempotent
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger("test.redact")
    logger.addHandler(Keep())
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.debug("< %s: %s", "authorization", f"Bearer {KEY}")
    logger.debug(f"cookie pharos_session={KEY}")
    logger.debug("%(k)s", {"k": KEY})
    logger.debug("raw %s", KEY.encode())
    assert seen and all(KEY[12:] not in line for line in seen), seen
    assert seen[0] == "< authorization: Bearer phk_abcdefgh…"
