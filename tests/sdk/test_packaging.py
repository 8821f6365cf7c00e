"""``pip install pharos`` stays light: the wheel requires only the OpenTelemetry API, SDK and
OTLP/HTTP exporter (the server is the ``server`` extra), and in a fresh virtualenv holding
nothing but the wheel and that dependency closure, ``import pharos`` works, imports no server
library, and the packaged example agent sends its traces and logs to a real OTLP receiver.

No network: the fresh environment gets the closure's files from this environment's installed
distributions (as symlinks, file by file, so nothing outside the closure is importable)."""

from __future__ import annotations

import email
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.sdk.otlp_capture import otlp_capture

ROOT = Path(__file__).resolve().parents[2]
SDK_REQUIREMENTS = {
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
}
SERVER_ONLY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "pydantic",
    "pydantic_settings",
    "typer",
    "rich",
    "psycopg",
    "redis",
    "grpc",
    "orjson",
    "lark",
    "httpx",
    "structlog",
    "yaml",
)


def _name(text: str) -> str:
    return text.lower().replace("_", "-").replace(".", "-")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("pharos-*.whl")
    return built


def _requires(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        message = email.message_from_bytes(zf.read(meta_name))
    return [Requirement(r) for r in message.get_all("Requires-Dist") or []]


def _is_base(req: Requirement) -> bool:
    return req.marker is None or req.marker.evaluate({"extra": ""})


def test_the_wheel_requires_only_opentelemetry(wheel: Path) -> None:
    requires = _requires(wheel)
    assert {_name(r.name) for r in requires if _is_base(r)} == SDK_REQUIREMENTS
    server = {
        _name(r.name) for r in requires if r.marker and r.marker.evaluate({"extra": "server"})
    }
    assert {"fastapi", "sqlalchemy", "uvicorn"} <= server
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert "pharos/examples/support_agent.py" in names
    assert "pharos/sdk/spans.py" in names


def _closure() -> list[metadata.Distribution]:
    """The installed distributions the SDK's requirements pull in, recursively."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [Requirement(r) for r in SDK_REQUIREMENTS]
    while todo:
        req = todo.pop()
        key = _name(req.name)
        if key in seen or not _is_base(req):
            continue
        dist = metadata.distribution(req.name)
        seen[key] = dist
        todo += [Requirement(r) for r in dist.requires or []]
    return list(seen.values())


def test_fresh_venv_with_only_the_sdk_dependencies(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    deps = tmp_path / "deps"
    here = Path(sysconfig.get_paths()["purelib"])
    linked = 0
    for dist in _closure():
        for file in dist.files or []:
            if file.parts[0] == "..":  # scripts outside site-packages
                continue
            source = here / file
            target = deps / file
            if source.is_file() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(source)
                linked += 1
    assert linked > 100
    (site / "sdk-deps.pth").write_text(str(deps) + "\n")

    check = (
        "import sys, time\n"
        "t = time.perf_counter(); import pharos; took = time.perf_counter() - t\n"
        "pharos.init(service_name='fresh', endpoint='http://127.0.0.1:9', logs=True)\n"
        f"bad = sorted({{m.split('.')[0] for m in sys.modules}} & set({SERVER_ONLY!r}))\n"
        "pharos.shutdown(1)\n"
        "print('server modules:', bad)\n"
        "print('import seconds:', round(took, 3))\n"
        "print('pharos from:', pharos.__file__)\n"
    )
    result = subprocess.run(
        [str(python), "-I", "-c", check], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    print(result.stdout)  # the import time, for the curious (measured properly in bench/)
    assert "server modules: []" in result.stdout
    assert str(site) in result.stdout  # the wheel's copy, not this checkout's
    for forbidden in ("fastapi", "sqlalchemy"):  # and they are not even installed there
        probe = subprocess.run(
            [str(python), "-I", "-c", f"import {forbidden}"], capture_output=True, timeout=60
        )
        assert probe.returncode != 0

    with otlp_capture() as capture:
        result = subprocess.run(
            [
                str(python),
                "-I",
                str(site / "pharos" / "examples" / "support_agent.py"),
                "--endpoint",
                capture.url,
                "--runs",
                "4",
                "--speed",
                "0",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "handled 4 tickets" in result.stderr
        spans = capture.spans()
        assert sum(s["name"] == "invoke_agent support-bot" for s in spans) == 4
        assert capture.logs(), "the example's logs were not exported"


def test_import_pharos_loads_only_the_opentelemetry_api() -> None:
    """``import pharos`` starts nothing: no server module, no OpenTelemetry SDK or exporter
    (``init()`` loads those), no thread."""
    code = (
        "import sys, threading\n"
        "import pharos\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('pharos.server', "
        "'opentelemetry.sdk', 'opentelemetry.exporter', 'requests', 'google')))\n"
        "print(loaded, threading.active_count())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[] 1"


def test_the_sdk_source_never_imports_the_server() -> None:
    import ast

    sdk = ROOT / "src" / "pharos" / "sdk"
    offenders = []
    for path in [*sdk.glob("*.py"), ROOT / "src" / "pharos" / "__init__.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("pharos.server")]
    assert offenders == []
    assert len(list(sdk.glob("*.py"))) >= 10  # the walk saw the SDK
