"""Find and run the example agent (``examples/support_agent.py``) for ``pharos demo --sdk``.

The example ships inside the wheel as ``pharos/examples/support_agent.py``; in a source
checkout it is read from the repository's ``examples/`` folder.
"""

from __future__ import annotations

import runpy
from pathlib import Path

NAME = "support_agent.py"


def example_path() -> Path:
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "examples" / NAME, package.parents[1] / "examples" / NAME):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"the example agent {NAME} is not installed with this package")


def run_example(endpoint: str, runs: int = 20, seed: int = 7, api_key: str | None = None) -> int:
    """Run the example against ``endpoint``; its exit code (0 when every span was sent).
    Without ``api_key`` the SDK takes PHAROS_API_KEY or OTEL_EXPORTER_OTLP_HEADERS."""
    module = runpy.run_path(str(example_path()), run_name="pharos_example")
    argv = ["--endpoint", endpoint, "--runs", str(runs), "--seed", str(seed)]
    if api_key:
        argv += ["--api-key", api_key]
    code: int = module["main"](argv)
    return code
