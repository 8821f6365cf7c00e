"""Every setting, CLI command, option and argument, and HTTP route is documented.

Reads files and walks in-memory objects only: building the app does no I/O (the database is
opened in its lifespan, which is not run here).

The walks use duck typing on purpose: Typer now ships its own copy of click (so
``isinstance(cmd, click.Group)`` is false for its groups) and FastAPI keeps included routers as
nested objects rather than copying their routes into ``app.routes``. A walk that silently finds
nothing would make these tests pass vacuously, so each walk is also checked against a few
commands and routes that must exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from pharos.cli import app as cli_app
from pharos.server.app import create_app
from pharos.server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: FastAPI's own documentation routes, not Pharos' API.
DOC_ROUTES = {"/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"}
#: Methods every route gets for free.
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}
HTTP_METHODS = {"GET", "PUT", "POST", "DELETE", "PATCH", "TRACE", *IMPLICIT_METHODS}


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# --- README ------------------------------------------------------------------------------------


def test_readme_has_the_two_commands() -> None:
    readme = _read(ROOT / "README.md")
    assert "make serve" in readme
    assert "make test" in readme


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented(field: str) -> None:
    assert f"`PHAROS_{field.upper()}`" in _read(DOCS / "configuration.md"), (
        f"PHAROS_{field.upper()} is not in docs/configuration.md"
    )


# --- CLI ---------------------------------------------------------------------------------------


def _walk_commands(prefix: str, command: Any) -> Iterator[tuple[str, Any]]:
    subcommands = getattr(command, "commands", None)
    if isinstance(subcommands, dict) and subcommands:
        for name, sub in sorted(subcommands.items()):
            if not getattr(sub, "hidden", False):
                yield from _walk_commands(f"{prefix} {name}", sub)
    else:
        yield prefix, command


COMMANDS = dict(_walk_commands("pharos", typer.main.get_command(cli_app)))


def test_the_command_walk_finds_the_commands() -> None:
    assert {"pharos serve", "pharos demo", "pharos db upgrade"} <= set(COMMANDS)


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_cli_command_option_and_argument_is_documented(path: str) -> None:
    text = _read(DOCS / "cli.md")
    assert re.search(rf"`{re.escape(path)}(?![\w-])", text), f"`{path}` is not in docs/cli.md"
    for param in COMMANDS[path].params:
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "option":
            flag = max(param.opts, key=len)
            if flag != "--help":
                assert re.search(rf"{re.escape(flag)}(?![\w-])", text), (
                    f"{path} {flag} is not in docs/cli.md"
                )
        elif param.param_type_name == "argument":
            assert param.name.upper() in text, f"{path} {param.name.upper()} is not in docs/cli.md"


# --- HTTP routes -------------------------------------------------------------------------------


def _walk_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route, descending into included routers and mounts; the method
    is "" for a route without one (a websocket, a mounted static app)."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:  # FastAPI >= 0.16x: an included router kept as a node
            context = getattr(route, "include_context", None)
            yield from _walk_routes(original.routes, prefix + getattr(context, "prefix", ""))
            continue
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            continue
        methods = getattr(route, "methods", None)
        nested = getattr(route, "routes", None)
        if methods is None and nested:  # a Mount of a sub-application with its own routes
            yield from _walk_routes(nested, prefix + path)
        elif methods:
            for method in sorted(set(methods) - IMPLICIT_METHODS):
                yield method, prefix + path
        elif path:  # a websocket route, or a mount of an opaque app (static files)
            yield "", prefix + path


APP = create_app(Settings(database_url="sqlite://"))
WALKED = {(method, path) for method, path in _walk_routes(APP.routes) if path not in DOC_ROUTES}
# The OpenAPI schema is a second, independent list of the routes (not of hidden ones).
SCHEMA = {
    (method.upper(), path)
    for path, operations in APP.openapi()["paths"].items()
    for method in operations
    if method.upper() in HTTP_METHODS - IMPLICIT_METHODS
}
ROUTES = WALKED | SCHEMA


def test_the_route_walk_finds_the_routes() -> None:
    assert {
        ("POST", "/v1/traces"),
        ("GET", "/api/v1/traces"),
        ("GET", "/api/v1/traces/{trace_id}"),
        ("GET", "/healthz"),
    } <= WALKED
    assert SCHEMA <= WALKED, f"the walk misses {sorted(SCHEMA - WALKED)}"


BY_PATH = sorted(ROUTES, key=lambda route: (route[1], route[0]))


@pytest.mark.parametrize(("method", "path"), BY_PATH)
def test_every_route_is_documented(method: str, path: str) -> None:
    text = _read(DOCS / "api.md") + "\n" + _read(DOCS / "ingest.md")
    # The whole path, not a prefix of a longer one (`/metrics` is not `/api/v1/metrics/summary`).
    pattern = r"(?<![\w/])" + re.escape(path) + r"(?![\w/{}-])"
    if method:
        pattern = rf"{method} {pattern}"
    assert re.search(pattern, text), (
        f"{method} {path} is in neither docs/api.md nor docs/ingest.md".strip()
    )
