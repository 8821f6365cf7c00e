"""Every setting, CLI command and option, and API route is documented."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import typer.main

from pharos.cli import app as cli_app
from pharos.server.app import create_app
from pharos.server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_readme_has_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make serve" in readme
    assert "make test" in readme


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented(field: str) -> None:
    assert f"PHAROS_{field.upper()}" in _read("configuration.md")


def _commands() -> list[tuple[str, click.Command]]:
    root = typer.main.get_command(cli_app)
    found: list[tuple[str, click.Command]] = []

    def walk(prefix: str, cmd: click.Command) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(f"{prefix} {name}", sub)
        else:
            found.append((prefix, cmd))

    walk("pharos", root)
    return found


@pytest.mark.parametrize(("path", "command"), _commands(), ids=lambda v: str(v))
def test_every_cli_command_and_option_is_documented(path: str, command: click.Command) -> None:
    text = _read("cli.md")
    assert f"`{path}`" in text, f"{path} is not in docs/cli.md"
    for param in command.params:
        if isinstance(param, click.Option):
            flag = max(param.opts, key=len)
            if flag != "--help":
                assert flag in text, f"{path} {flag} is not in docs/cli.md"


def test_every_route_is_documented() -> None:
    app = create_app(Settings(database_url="sqlite://"))
    docs = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.md"))
    skip = {"/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"}
    paths = {getattr(r, "path", "") for r in app.routes} - skip
    missing = sorted(p for p in paths if p and p not in docs)
    assert not missing, f"routes missing from docs/: {missing}"
