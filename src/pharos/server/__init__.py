"""The Pharos server: ingest, storage, query APIs."""
