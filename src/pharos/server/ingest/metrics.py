"""OTLP metrics: decode ``ExportMetricsServiceRequest`` bodies and normalize them into metric
point records (DESIGN §3, §5).

Pure: bytes in, :class:`MetricPoint` records plus the data points rejected (and why) out.

What is kept, per data point: the metric's name, description, unit and type — ``gauge``,
``sum`` (with its temporality, ``cumulative`` or ``delta``, and whether it is monotonic) or
``histogram`` (explicit bounds, bucket counts, count, sum, min, max) — its start and end time
(ns), value, attributes, resource, the agent it belongs to (the same rule as spans: the point's
``gen_ai.agent.name`` / ``agent.name`` attribute, else the resource's, else the resource's
``service.name``) and a **series key**: a hash of name, type, agent, the point's attributes and
the resource's, which groups the points of one time series. ``(series_key, time_ns)`` is unique,
so a resent export is stored once.

Exponential histograms are converted into explicit-bucket histograms (each exponential bucket
becomes one explicit bucket; exact, nothing is re-binned), so every histogram is read the same
way. OTLP ``summary`` metrics (a legacy type with precomputed quantiles that cannot be merged)
are rejected with a ``partial_success`` message saying so.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError as _ProtobufDecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from pharos.server.ingest.decode import PROTOBUF, DecodeError
from pharos.server.ingest.normalize import (
    AGENT_KEYS,
    MAX_TIME_NS,
    UNKNOWN_AGENT,
    Limits,
    attributes_dict,
)

GAUGE, SUM, HISTOGRAM = "gauge", "sum", "histogram"
CUMULATIVE, DELTA = "cumulative", "delta"
_TEMPORALITY = {1: DELTA, 2: CUMULATIVE}
_NO_RECORDED_VALUE = 1  # DataPointFlags.FLAG_NO_RECORDED_VALUE
#: Most buckets kept for one histogram point (OTel's default exponential histogram has 160).
MAX_BUCKETS = 4096
MAX_NAME_LENGTH = 255


@dataclass(slots=True)
class MetricPoint:
    series_key: str
    name: str
    type: str  # gauge | sum | histogram
    temporality: str  # "" (gauge) | cumulative | delta
    monotonic: bool
    unit: str
    description: str
    agent: str
    attributes: str  # JSON object
    resource: str  # JSON object
    start_ns: int | None
    time_ns: int
    value: float | None = None  # gauge and sum
    count: int | None = None  # histogram
    sum: float | None = None
    min: float | None = None
    max: float | None = None
    bounds: str | None = None  # JSON array of explicit bounds
    counts: str | None = None  # JSON array of bucket counts (len(bounds) + 1)


@dataclass(slots=True)
class MetricBatch:
    points: list[MetricPoint] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected += n
        if len(self.reasons) < 5 and reason not in self.reasons:
            self.reasons.append(reason)

    @property
    def error_message(self) -> str:
        if not self.rejected:
            return ""
        return f"{self.rejected} data point(s) rejected: " + "; ".join(self.reasons)


# --- decode ------------------------------------------------------------------------------------


def decode_metrics(body: bytes, content_type: str) -> ExportMetricsServiceRequest:
    """Decode an ``ExportMetricsServiceRequest`` (protobuf or OTLP JSON)."""
    request = ExportMetricsServiceRequest()
    if content_type == PROTOBUF:
        try:
            request.ParseFromString(body)
        except _ProtobufDecodeError as exc:
            raise DecodeError(f"invalid protobuf ExportMetricsServiceRequest: {exc}") from None
        except Exception as exc:  # upb raises a few other types on hostile input
            raise DecodeError(f"invalid protobuf ExportMetricsServiceRequest: {exc}") from None
        return request
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise DecodeError("invalid OTLP JSON: the body must be a JSON object")
    _drop_exemplars(document)
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise DecodeError(f"invalid OTLP JSON: {exc}") from None
    except Exception as exc:  # e.g. a lone surrogate refused by the protobuf runtime
        raise DecodeError(f"invalid OTLP JSON: {exc}") from None
    return request


def _drop_exemplars(document: dict[str, Any]) -> None:
    """Exemplars are not stored; OTLP JSON writes their ids in hex, which protobuf's JSON
    mapping would misread as base64, so they are removed before parsing."""
    for rm in _list(document.get("resourceMetrics", document.get("resource_metrics"))):
        for sm in _list(_get(rm, "scopeMetrics", "scope_metrics")):
            for metric in _list(_get(sm, "metrics")):
                if not isinstance(metric, dict):
                    continue
                for kind in ("gauge", "sum", "histogram", "exponentialHistogram"):
                    data = _get(metric, kind, _snake(kind))
                    for point in _list(_get(data, "dataPoints", "data_points")):
                        if isinstance(point, dict):
                            point.pop("exemplars", None)


def _get(obj: Any, *keys: str) -> Any:
    if not isinstance(obj, dict):
        return None
    for key in keys:
        if key in obj:
            return obj[key]
    return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


# --- normalize ---------------------------------------------------------------------------------


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")


def _agent_of(attrs: Mapping[str, Any], resource: Mapping[str, Any]) -> str:
    for source in (attrs, resource):
        for key in AGENT_KEYS:
            value = source.get(key)
            if isinstance(value, str) and value:
                return value
    service = resource.get("service.name")
    return service if isinstance(service, str) and service else UNKNOWN_AGENT


def series_key(name: str, type_: str, agent: str, attributes: str, resource: str) -> str:
    """Identity of a time series: the same name, type, agent, attributes and resource."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (name, type_, agent, attributes, resource):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def _text(value: str, limit: int) -> str:
    value = value.replace("\x00", "\ufffd") if "\x00" in value else value
    return value[:limit]


def normalize_metrics(request: ExportMetricsServiceRequest, limits: Limits) -> MetricBatch:
    """Turn an OTLP metrics export into point records; bad points are rejected, not fatal."""
    batch = MetricBatch()
    for rm in request.resource_metrics:
        resource_attrs = attributes_dict(rm.resource.attributes, limits)
        resource_json = _json(resource_attrs)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                _normalize_metric(metric, resource_attrs, resource_json, limits, batch)
    return batch


def _normalize_metric(
    metric: Any,
    resource: Mapping[str, Any],
    resource_json: str,
    limits: Limits,
    batch: MetricBatch,
) -> None:
    name = _text(metric.name, MAX_NAME_LENGTH)
    which = metric.WhichOneof("data")
    if not name:
        batch.reject("a metric has no name", _point_count(metric, which))
        return
    if which is None:
        batch.reject(f"metric {name!r} has no data (gauge, sum or histogram)")
        return
    if which == "summary":
        batch.reject(
            f"metric {name!r}: summary metrics are not supported (send a histogram)",
            len(metric.summary.data_points) or 1,
        )
        return
    unit = _text(metric.unit, 64)
    description = _text(metric.description, 1024)
    data = getattr(metric, which)
    if which == "gauge":
        type_, temporality, monotonic = GAUGE, "", False
    elif which == "sum":
        type_, monotonic = SUM, bool(data.is_monotonic)
        temporality = _TEMPORALITY.get(int(data.aggregation_temporality), "")
    else:
        type_, monotonic = HISTOGRAM, False
        temporality = _TEMPORALITY.get(int(data.aggregation_temporality), "")
    if type_ != GAUGE and not temporality:
        batch.reject(
            f"metric {name!r}: aggregation_temporality must be delta or cumulative",
            len(data.data_points) or 1,
        )
        return
    for point in data.data_points:
        if point.flags & _NO_RECORDED_VALUE:
            continue  # an explicit "no value" marker (e.g. a stale series): nothing to store
        time_ns = int(point.time_unix_nano)
        if time_ns <= 0:
            batch.reject(f"metric {name!r}: time_unix_nano is missing")
            continue
        if time_ns > MAX_TIME_NS or point.start_time_unix_nano > MAX_TIME_NS:
            batch.reject(f"metric {name!r}: time_unix_nano is after the year 2262")
            continue
        attrs = attributes_dict(point.attributes, limits)
        attrs_json = _json(attrs)
        agent = _text(_agent_of(attrs, resource), limits.max_attribute_length)
        record = MetricPoint(
            series_key=series_key(name, type_, agent, attrs_json, resource_json),
            name=name,
            type=type_,
            temporality=temporality,
            monotonic=monotonic,
            unit=unit,
            description=description,
            agent=agent,
            attributes=attrs_json,
            resource=resource_json,
            start_ns=int(point.start_time_unix_nano) or None,
            time_ns=time_ns,
        )
        if which in ("gauge", "sum"):
            error = _number(point, record)
        elif which == "histogram":
            error = _histogram(point, record)
        else:
            error = _exponential_histogram(point, record)
        if error:
            batch.reject(f"metric {name!r}: {error}")
            continue
        batch.points.append(record)


def _point_count(metric: Any, which: str | None) -> int:
    return len(getattr(metric, which).data_points) or 1 if which else 1


def _number(point: Any, record: MetricPoint) -> str | None:
    kind = point.WhichOneof("value")
    if kind is None:
        return "a data point has no value"
    value = float(point.as_int) if kind == "as_int" else float(point.as_double)
    if not math.isfinite(value):
        return f"value {value} is not a finite number"
    record.value = value
    return None


def _finite_optional(point: Any, name: str) -> float | None:
    if point.HasField(name):
        value = float(getattr(point, name))
        return value if math.isfinite(value) else None
    return None


def _histogram(point: Any, record: MetricPoint) -> str | None:
    bounds = [float(b) for b in point.explicit_bounds]
    counts = [int(c) for c in point.bucket_counts]
    if counts and len(counts) != len(bounds) + 1:
        return (
            f"histogram has {len(counts)} bucket counts for {len(bounds)} bounds "
            "(expected one more count than bounds)"
        )
    if len(counts) > MAX_BUCKETS:
        return f"histogram has more than {MAX_BUCKETS} buckets"
    if not all(math.isfinite(b) for b in bounds) or any(
        b >= a for b, a in itertools.pairwise(bounds)
    ):
        return "histogram explicit_bounds must be finite and strictly increasing"
    if counts and sum(counts) != point.count:
        return f"histogram bucket counts add up to {sum(counts)}, not count={point.count}"
    record.count = int(point.count)
    record.sum = _finite_optional(point, "sum")
    record.min = _finite_optional(point, "min")
    record.max = _finite_optional(point, "max")
    if counts:
        record.bounds = _json(bounds)
        record.counts = _json(counts)
    return None


def exponential_to_explicit(
    scale: int,
    zero_count: int,
    zero_threshold: float,
    positive_offset: int,
    positive_counts: list[int],
    negative_offset: int,
    negative_counts: list[int],
) -> tuple[list[float], list[int]]:
    """Explicit bounds and counts holding exactly the buckets of an exponential histogram.

    Bucket ``i`` of the positive range holds values in ``(base**i, base**(i+1)]`` with
    ``base = 2**(2**-scale)``; the negative range mirrors it; the zero bucket holds
    ``[-zero_threshold, zero_threshold]``. Gaps between them become empty explicit buckets.
    Raises ``OverflowError`` for a bucket bound that is not a finite float.
    """

    def bound(index: int) -> float:
        value = math.pow(2.0, index * math.pow(2.0, -scale))
        if not math.isfinite(value):
            raise OverflowError("bucket bound out of range")
        return value

    intervals: list[tuple[float, float, int]] = []
    for k in range(len(negative_counts) - 1, -1, -1):
        index = negative_offset + k
        intervals.append((-bound(index + 1), -bound(index), negative_counts[k]))
    if zero_count or zero_threshold:
        intervals.append((-zero_threshold, zero_threshold, zero_count))
    for k, count in enumerate(positive_counts):
        index = positive_offset + k
        intervals.append((bound(index), bound(index + 1), count))
    bounds: list[float] = []
    counts: list[int] = [0]  # (-inf, first bound]
    for lower, upper, count in intervals:
        if not bounds:
            bounds.append(lower)
        elif lower > bounds[-1]:
            bounds.append(lower)
            counts.append(0)  # the gap (previous upper, lower]
        elif lower < bounds[-1]:  # overlapping zero bucket: merge into what is there
            counts[-1] += count
            continue
        if upper > bounds[-1]:
            bounds.append(upper)
            counts.append(count)
        else:  # a zero-width interval (zero bucket with threshold 0): fold into the last bucket
            counts[-1] += count
    counts.append(0)  # (last bound, +inf)
    return bounds, counts


def _exponential_histogram(point: Any, record: MetricPoint) -> str | None:
    positive = [int(c) for c in point.positive.bucket_counts]
    negative = [int(c) for c in point.negative.bucket_counts]
    if len(positive) + len(negative) > MAX_BUCKETS:
        return f"exponential histogram has more than {MAX_BUCKETS} buckets"
    if not -10 <= point.scale <= 20:
        return f"exponential histogram scale {point.scale} is outside -10..20"
    zero_threshold = float(point.zero_threshold)
    if not math.isfinite(zero_threshold) or zero_threshold < 0:
        return "exponential histogram zero_threshold must be a finite number >= 0"
    try:
        bounds, counts = exponential_to_explicit(
            int(point.scale),
            int(point.zero_count),
            zero_threshold,
            int(point.positive.offset),
            positive,
            int(point.negative.offset),
            negative,
        )
    except OverflowError:
        return "exponential histogram bucket bounds are out of range"
    if sum(counts) != point.count:
        return f"exponential histogram buckets add up to {sum(counts)}, not count={point.count}"
    record.count = int(point.count)
    record.sum = _finite_optional(point, "sum")
    record.min = _finite_optional(point, "min")
    record.max = _finite_optional(point, "max")
    if len(bounds) > 0:
        record.bounds = _json(bounds)
        record.counts = _json(counts)
    return None


def parse_metrics(body: bytes, content_type: str, limits: Limits) -> MetricBatch:
    """Decode and normalize one (already decompressed) OTLP metrics body."""
    return normalize_metrics(decode_metrics(body, content_type), limits)
