"""Pharos: observability for AI agents.

This package's top level is the SDK's public API. Importing it starts nothing; the server lives
in :mod:`pharos.server` and is only imported by the CLI.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
