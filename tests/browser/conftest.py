"""Browser tests: Debian's Chromium driven by Playwright against a real ``pharos serve``
(SQLite, seeded through ``POST /v1/traces``). Screenshots go to ``tests/browser/artifacts/``."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pharos.server.web import DIST
from tests.browser import seed
from tests.conftest import RunningServer, run_server

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
VIEWPORT = {"width": 1280, "height": 800}


def _missing() -> str | None:
    if not (DIST / "index.html").is_file():
        return "the dashboard is not built (make web)"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


# Package scope: Playwright's sync API keeps an event loop running on the main thread while it
# is open, which would break later tests that call asyncio.run().
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason:
        if os.environ.get("PHAROS_TEST_REQUIRE_SERVICES"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


@dataclass
class Seeded:
    server: RunningServer
    traces: dict[str, str] = field(default_factory=dict)  # label -> trace id (hex)

    def post(self, spans: list[Any], service: str = "browser-test") -> None:
        r = self.server.post(
            "/v1/traces",
            content=seed.request(spans, service),
            headers={"content-type": "application/x-protobuf"},
        )
        assert r.status_code == 200, r.text

    def api(self, path: str, **params: Any) -> Any:
        r = self.server.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    db = tmp_path_factory.mktemp("browser") / "pharos.db"
    with run_server(f"sqlite:///{db}", live_summary_seconds=0.5, live_heartbeat_seconds=2) as srv:
        s = Seeded(srv)
        for i in range(8):
            agent = "support-bot" if i % 2 else "research-agent"
            tid, spans = seed.agent_run(agent, steps=2 + i % 3, fail=i % 4 == 3, ago_s=300 - 30 * i)
            s.post(spans)
            s.traces[f"run{i}"] = tid.hex()
        tid, spans = seed.hostile_run()
        s.post(spans)
        s.traces["hostile"] = tid.hex()
        yield s


@dataclass
class Watched:
    """A page with what went wrong on it: console errors, uncaught errors, dialogs."""

    page: Any
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def shot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        self.page.evaluate("() => window.scrollTo(0, 0)")  # the sticky top bar stays on top
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.dialogs == [], self.dialogs


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Watched]:
    context = browser.new_context(viewport=VIEWPORT, color_scheme="dark")
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    w = Watched(pg)
    pg.on(
        "console",
        lambda m: w.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    pg.on("pageerror", lambda e: w.errors.append(f"pageerror: {e}"))

    def on_dialog(d: Any) -> None:
        w.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    pg.on("dialog", on_dialog)
    yield w
    context.close()


@pytest.fixture(scope="session", autouse=True)
def _fresh_artifacts(request: pytest.FixtureRequest) -> None:
    """Empty the artifacts folder once per test run: with pytest-xdist every worker runs this,
    so the first one (under a lock) clears it and marks it with the run's id."""
    run = getattr(request.config, "workerinput", {}).get("testrunuid") or uuid.uuid4().hex
    digest = hashlib.sha256(str(ARTIFACTS).encode()).hexdigest()[:12]
    with open(Path(tempfile.gettempdir()) / f"pharos-artifacts-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = ARTIFACTS / ".run"
        if not marker.exists() or marker.read_text() != run:
            shutil.rmtree(ARTIFACTS, ignore_errors=True)
            ARTIFACTS.mkdir(exist_ok=True)
            marker.write_text(run)
