"""What a target is sent for one queued request (pure: bytes in, bytes out).

A protobuf request sent to a target without an agent filter goes out as it came in, still
gzipped if it was: no decoding on the way. Otherwise (an OTLP/JSON request, an agent filter, or
a partial resend of which only some spans were new) the request is decoded, filtered and sent
as gzipped protobuf, which every OTLP/HTTP receiver accepts. This runs in the forwarding
worker, off the ingest path.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from pharos.server.forward.config import agent_matches
from pharos.server.ingest.body import decode_content
from pharos.server.ingest.decode import PROTOBUF, decode_traces
from pharos.server.ingest.logs import decode_logs
from pharos.server.ingest.metrics import decode_metrics
from pharos.server.ingest.normalize import AGENT_KEYS, Limits, normalize_traces

#: Content-Type of every forwarded request.
CONTENT_TYPE = PROTOBUF


@dataclass(frozen=True, slots=True)
class Outgoing:
    body: bytes
    headers: Mapping[str, str]


def outgoing(
    signal: str,
    body: bytes,
    content_type: str,
    encoding: str | None,
    *,
    agents: Sequence[str] = (),
    only_spans: Collection[str] | None = None,
    max_bytes: int = 64 * 1024 * 1024,
    limits: Limits | None = None,
) -> Outgoing | None:
    """The request to post, or None when the filters leave nothing to send."""
    if content_type == PROTOBUF and not agents and only_spans is None:
        headers = {"Content-Type": CONTENT_TYPE}
        if encoding:
            headers["Content-Encoding"] = encoding
        return Outgoing(body, headers)
    raw = decode_content(body, encoding, max_bytes)
    message: Any
    if signal == "traces":
        message = decode_traces(raw, content_type)
        keep = _span_filter(message, agents, only_spans, limits or Limits(256, 32 * 1024))
        if not _filter_traces(message, keep):
            return None
    elif signal == "metrics":
        message = decode_metrics(raw, content_type)
        if agents and not _filter_metrics(message, agents):
            return None
    elif signal == "logs":
        message = decode_logs(raw, content_type)
        if agents and not _filter_logs(message, agents):
            return None
    else:
        raise ValueError(f"unknown signal {signal!r}")
    data = gzip.compress(message.SerializeToString(), compresslevel=1, mtime=0)
    return Outgoing(data, {"Content-Type": CONTENT_TYPE, "Content-Encoding": "gzip"})


def _span_filter(
    message: Any, agents: Sequence[str], only: Collection[str] | None, limits: Limits
) -> Callable[[str], bool]:
    """key (trace_id hex + span_id hex) -> send it? Agents are Pharos' own reading of the
    request (attributes, inherited from the agent span above, else service.name)."""
    allowed: set[str] | None = None
    if agents:
        batch = normalize_traces(message, limits)
        allowed = {r.trace_id + r.span_id for r in batch.spans if agent_matches(r.agent, agents)}
    only_set = set(only) if only is not None else None

    def keep(key: str) -> bool:
        if allowed is not None and key not in allowed:
            return False
        return only_set is None or key in only_set

    return keep


def _filter_traces(message: Any, keep: Callable[[str], bool]) -> int:
    kept_total = 0
    for rs in list(message.resource_spans):
        for ss in list(rs.scope_spans):
            kept = [s for s in ss.spans if keep(s.trace_id.hex() + s.span_id.hex())]
            del ss.spans[:]
            ss.spans.extend(kept)
            kept_total += len(kept)
        _drop_empty(rs.scope_spans, "spans")
    _drop_empty(message.resource_spans, "scope_spans")
    return kept_total


def _agent(attrs: Sequence[KeyValue], resource: Sequence[KeyValue]) -> str:
    """The agent rule of DESIGN §3 on raw attributes: the record's agent attribute, else the
    resource's, else the resource's service.name."""
    for source in (attrs, resource):
        for key in AGENT_KEYS:
            for kv in source:
                if kv.key == key and kv.value.string_value:
                    return str(kv.value.string_value)
    for kv in resource:
        if kv.key == "service.name" and kv.value.string_value:
            return str(kv.value.string_value)
    return "unknown"


def _filter_metrics(message: Any, agents: Sequence[str]) -> int:
    kept_total = 0
    for rm in list(message.resource_metrics):
        resource = rm.resource.attributes
        for sm in list(rm.scope_metrics):
            for metric in list(sm.metrics):
                which = metric.WhichOneof("data")
                if which is None:
                    continue
                points = getattr(metric, which).data_points
                kept = [p for p in points if agent_matches(_agent(p.attributes, resource), agents)]
                del points[:]
                points.extend(kept)
                kept_total += len(kept)
            alive = [m for m in sm.metrics if _has_points(m)]
            del sm.metrics[:]
            sm.metrics.extend(alive)
        _drop_empty(rm.scope_metrics, "metrics")
    _drop_empty(message.resource_metrics, "scope_metrics")
    return kept_total


def _has_points(metric: Any) -> bool:
    which = metric.WhichOneof("data")
    return which is not None and len(getattr(metric, which).data_points) > 0


def _filter_logs(message: Any, agents: Sequence[str]) -> int:
    kept_total = 0
    for rl in list(message.resource_logs):
        resource = rl.resource.attributes
        for sl in list(rl.scope_logs):
            kept = [
                r for r in sl.log_records if agent_matches(_agent(r.attributes, resource), agents)
            ]
            del sl.log_records[:]
            sl.log_records.extend(kept)
            kept_total += len(kept)
        _drop_empty(rl.scope_logs, "log_records")
    _drop_empty(message.resource_logs, "scope_logs")
    return kept_total


def _drop_empty(container: Any, child: str) -> None:
    alive = [item for item in container if len(getattr(item, child)) > 0]
    del container[:]
    container.extend(alive)
