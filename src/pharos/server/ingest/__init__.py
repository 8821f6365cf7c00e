"""OTLP ingest: HTTP routes, decoding, convention mapping, the group-commit writer."""
