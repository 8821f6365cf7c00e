"""What the CLI commands that talk to a running server share (``pharos alerts``, ``slo``,
``report``, ``demo``): the server's ``--url`` (env ``PHAROS_URL``), an API key ``--key`` (env
``PHAROS_API_KEY``) sent as ``Authorization: Bearer``, and one clear message, exit code 1, when
the server cannot be reached or refuses the request (401/403 say how to pass a key)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape

DEFAULT_URL = "http://127.0.0.1:4318"
KEY_ENV = "PHAROS_API_KEY"
KEY_HINT = f"pass one with --key or the {KEY_ENV} environment variable"
err = Console(stderr=True)

UrlOption = Annotated[
    str, typer.Option("--url", envvar="PHAROS_URL", help="The Pharos server (env PHAROS_URL).")
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar=KEY_ENV,
        help=f"API key, sent as Authorization: Bearer (env {KEY_ENV}).",
        show_default=False,
    ),
]


def clean_key(key: str | None) -> str | None:
    """The key as given, without surrounding blanks; None when empty."""
    text = (key or "").strip()
    return text or None


def auth_headers(key: str | None) -> dict[str, str]:
    key = clean_key(key)
    return {"authorization": f"Bearer {key}"} if key else {}


def server_message(response: httpx.Response) -> str:
    """The ``{"error": {"message": ...}}`` of a Pharos answer, else the start of the body."""
    try:
        return str(response.json()["error"]["message"])
    except Exception:
        return response.text[:300] or response.reason_phrase


def refusal(status: int, message: str, key_from: str | None, scopes: str = "admin") -> str:
    """What to print for an error answer. ``key_from`` says where the key sent came from
    (``--key/PHAROS_API_KEY``, ``OTEL_EXPORTER_OTLP_HEADERS``), None when none was sent;
    ``scopes`` is what to create a key with."""
    if status == 401 and key_from is None:
        return (
            f"{status}: this server needs an API key: {KEY_HINT} (create one with "
            f"`pharos keys create --name NAME --scopes {scopes}`)"
        )
    if status == 401:
        return f"{status}: the API key from {key_from} was refused ({message}); {KEY_HINT}"
    if status == 403:
        return f"{status}: {message}; pass a key with that scope with --key or {KEY_ENV}"
    return f"{status}: {message}"


def fail(response: httpx.Response, key_from: str | None, scopes: str = "admin") -> NoReturn:
    text = refusal(response.status_code, server_message(response), key_from, scopes)
    err.print(f"[red]{escape(text)}[/red]")
    raise typer.Exit(1)


@dataclass(frozen=True)
class Server:
    """A running Pharos server and the key to present to it."""

    url: str = DEFAULT_URL
    key: str | None = None

    @classmethod
    def of(cls, url: str, key: str | None) -> Server:
        return cls(url.rstrip("/"), clean_key(key))

    @property
    def key_from(self) -> str | None:
        return f"--key/{KEY_ENV}" if self.key else None

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float = 30,
    ) -> httpx.Response:
        """Send one request; exit 1 with a message when the server cannot be reached."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            return httpx.request(
                method,
                self.url + path,
                json=json,
                params=query,
                headers=auth_headers(self.key),
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            err.print(f"[red]cannot reach Pharos at {escape(self.url)}:[/red] {escape(str(exc))}")
            raise typer.Exit(1) from None

    def call(
        self, method: str, path: str, body: Any = None, *, timeout: float = 30, **params: Any
    ) -> Any:
        """The JSON answer of a request; exit 1 with the server's message on a 4xx/5xx."""
        response = self.request(method, path, json=body, params=params, timeout=timeout)
        if response.status_code >= 400:
            fail(response, self.key_from)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            err.print(f"[red]{escape(self.url)} did not answer JSON:[/red] {response.text[:200]!r}")
            raise typer.Exit(1) from None
