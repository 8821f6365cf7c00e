"""Forwarding (issue 9): every accepted OTLP request is also sent on to other OTLP/HTTP
backends, from a durable queue written in the ingest transaction (see docs/interop.md).

- ``config``: the targets, from settings (pure).
- ``payload``: what one target is sent for one queued request (pure).
- ``queue``: the SQL of the ``forward_queue`` table.
- ``worker``: sends queued requests after commit, with backoff and jitter, bounded.
- ``service``: the ingest-side API (``Forwarder``), the writer hook and the /metrics collector.
"""
