"""Settings in Chromium against a real server: API keys (created and shown once, listed,
revoked), notification channels of every type (added, tested through a real local receiver,
disabled, deleted) and model prices (an override from a date, deleted; an unknown model priced
from its "Set price")."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.alert_receivers import receiver, wait_for
from tests.browser import seed
from tests.browser.conftest import Seeded, Watched
from tests.conftest import free_port, run_server

UNPRICED = "mystery-model-9000"


@pytest.fixture(scope="module")
def configurable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    db = tmp_path_factory.mktemp("browser-settings") / "pharos.db"
    with run_server(f"sqlite:///{db}", alert_default_rules=False) as srv:
        s = Seeded(srv)
        for model in (UNPRICED, "gpt-4o"):
            _tid, spans = seed.agent_run("pricing-agent", model=model, steps=2, ago_s=120)
            s.post(spans)
        yield s


def _goto_settings(w: Watched, base: str) -> None:
    w.page.goto(f"{base}/settings")
    w.page.get_by_test_id("page-settings").wait_for()
    w.page.wait_for_load_state("networkidle")


def test_channels_of_every_type_are_managed(configurable: Seeded, page: Watched) -> None:
    base = configurable.server.url
    with receiver(free_port()) as hook:
        _goto_settings(page, base)
        section = page.page.get_by_test_id("channels")

        def add(name: str, kind: str, fields: dict[str, str]) -> None:
            section.get_by_test_id("channel-name").fill(name)
            section.get_by_test_id("channel-type").select_option(kind)
            for key, value in fields.items():
                section.get_by_test_id(f"channel-{key}").fill(value)
            section.get_by_test_id("channel-add").click()
            section.locator(f'tr[data-channel="{name}"]').wait_for()

        add("ops hook", "webhook", {"url": hook.url, "secret": "s3cret"})
        add("team slack", "slack", {"url": "https://hooks.slack.com/services/T0/B0/xyz"})
        section.get_by_test_id("channel-sev-info").check()  # all four severities for PagerDuty
        add("on-call", "pagerduty", {"routing_key": "R0UT1NGKEY"})
        add(
            "mail",
            "email",
            {"host": "smtp.example.com", "port": "2525", "to": "a@example.com, b@example.com"},
        )
        channels = {c["name"]: c for c in configurable.api("/api/v1/alerts/channels")["items"]}
        assert {n: c["type"] for n, c in channels.items()} == {
            "ops hook": "webhook",
            "team slack": "slack",
            "on-call": "pagerduty",
            "mail": "email",
        }
        assert channels["mail"]["config"]["to"] == ["a@example.com", "b@example.com"]
        assert channels["mail"]["config"]["port"] == 2525
        assert channels["on-call"]["severities"] == ["warning", "error", "critical", "info"]
        assert channels["ops hook"]["severities"] == ["warning", "error", "critical"]
        assert all(c["enabled"] for c in channels.values())
        page.shot("settings-channels")

        # Send a test through the outbox to the real receiver, and see it delivered.
        row = section.locator('tr[data-channel="ops hook"]')
        row.get_by_test_id("channel-test").click()
        row.locator('[data-testid=channel-test-status][data-status="sent"]').wait_for(
            timeout=30_000
        )
        wait_for(lambda: len(hook.accepted) == 1)
        assert hook.accepted[0].json["event"] == "test"

        # Disable, then delete (after confirming in the page).
        toggle = row.get_by_test_id("channel-enabled")
        toggle.click()  # the box follows the API's answer
        page.page.wait_for_function("el => !el.checked", arg=toggle.element_handle())
        wait_for(
            lambda: (
                not next(
                    c
                    for c in configurable.api("/api/v1/alerts/channels")["items"]
                    if c["name"] == "ops hook"
                )["enabled"]
            )
        )
        slack = section.locator('tr[data-channel="team slack"]')
        slack.get_by_test_id("channel-delete").click()
        slack.get_by_test_id("channel-delete-confirm").click()
        slack.wait_for(state="detached")
        names = {c["name"] for c in configurable.api("/api/v1/alerts/channels")["items"]}
        assert names == {"ops hook", "on-call", "mail"}
        # A bad config is the API's error, shown in the page.
        section.get_by_test_id("channel-name").fill("broken")
        section.get_by_test_id("channel-type").select_option("webhook")
        section.get_by_test_id("channel-url").fill("ftp://nope")
        section.get_by_test_id("channel-add").click()
        section.get_by_role("alert").get_by_text(re.compile("http\\(s\\) URL")).wait_for()
    unexpected = [e for e in page.errors if "400" not in e]  # the refused config
    assert unexpected == [], unexpected


def test_prices_are_managed(configurable: Seeded, page: Watched) -> None:
    base = configurable.server.url
    _goto_settings(page, base)
    section = page.page.get_by_test_id("prices")
    unknown = section.get_by_test_id("unknown-models")
    unknown.locator(f'li[data-model="{UNPRICED}"]').wait_for()
    page.shot("settings-prices-unknown")
    # "Set price" on the unknown model fills the form with its name.
    unknown.locator(f'li[data-model="{UNPRICED}"]').get_by_test_id("set-price").click()
    assert section.get_by_test_id("price-model").input_value() == UNPRICED
    section.get_by_test_id("price-input").fill("1.5")
    section.get_by_test_id("price-output").fill("6")
    section.get_by_test_id("price-when-always").check()
    section.get_by_test_id("price-save").click()
    section.get_by_test_id("price-notice").wait_for()
    priced = configurable.api("/api/v1/prices", model=UNPRICED)
    assert priced["price"]["input_usd_per_mtok"] == "1.5"
    assert priced["price"]["output_usd_per_mtok"] == "6"
    assert priced["price"]["source"] == "override"
    section.get_by_test_id("unknown-models").wait_for(state="detached")  # nothing unpriced left

    # An override of a bundled model from a date, then deleted.
    section.get_by_test_id("price-model").fill("gpt-4o")
    section.get_by_test_id("price-input").fill("3")
    section.get_by_test_id("price-output").fill("12")
    section.get_by_test_id("price-cached").fill("1.25")
    section.get_by_test_id("price-effective").fill("2030-01-01T00:00")
    section.get_by_test_id("price-save").click()
    section.get_by_test_id("price-notice").get_by_text("gpt-4o").wait_for()
    expected = page.page.evaluate("() => new Date('2030-01-01T00:00').toISOString()")
    history = configurable.api("/api/v1/prices", model="gpt-4o")["history"]
    overrides = [p for p in history if p["source"] == "override"]
    assert len(overrides) == 1 and overrides[0]["cached_usd_per_mtok"] == "1.25"
    assert overrides[0]["effective_from"].replace("Z", "") == expected.replace(".000Z", "")
    section.get_by_test_id("price-filter").fill("gpt-4o")
    row = section.locator('tr[data-model="gpt-4o"][data-source="override"]')
    assert "2030-01-01" in row.inner_text()
    page.shot("settings-prices")
    row.get_by_test_id("price-delete").click()
    row.get_by_test_id("price-delete-confirm").click()
    row.wait_for(state="detached")
    history = configurable.api("/api/v1/prices", model="gpt-4o")["history"]
    assert [p for p in history if p["source"] == "override"] == []
    page.assert_clean()


def test_keys_are_created_shown_once_and_revoked(
    page: Watched, tmp_path_factory: pytest.TempPathFactory
) -> None:
    db = tmp_path_factory.mktemp("browser-keys") / "pharos.db"
    with run_server(f"sqlite:///{db}") as server:
        _goto_settings(page, server.url)
        keys = page.page.get_by_test_id("keys")
        # Open server: the first key must let this browser read, or it would lock itself out.
        keys.get_by_test_id("first-key-note").wait_for()
        keys.get_by_test_id("key-scope-read").uncheck()
        keys.get_by_test_id("key-scope-ingest").check()
        assert keys.get_by_test_id("key-create").is_disabled()
        keys.get_by_test_id("key-scope-admin").check()
        keys.get_by_test_id("key-name").fill("dashboard admin")
        keys.get_by_test_id("key-create").click()
        shown = keys.get_by_test_id("new-key-value")
        shown.wait_for()
        admin_key = shown.input_value()
        assert admin_key.startswith("phk_")
        # The server is closed now; this browser signed in with the new key and stays here.
        assert server.get("/api/v1/overview").status_code == 401
        auth = {"authorization": f"Bearer {admin_key}"}
        listed = server.get("/api/v1/keys", headers=auth).json()["items"]
        assert [(k["name"], k["scopes"]) for k in listed] == [
            ("dashboard admin", ["admin", "ingest"])
        ]
        row = keys.locator(f'tr[data-prefix="{listed[0]["prefix"]}"]')
        row.get_by_text("this browser").wait_for()
        assert admin_key not in keys.get_by_test_id("keys-table").inner_text()  # prefix only
        page.shot("settings-key-created")
        # Shown once: after a reload only the prefix is left.
        page.page.reload()
        page.page.get_by_test_id("keys-table").wait_for()
        assert page.page.get_by_test_id("new-key").count() == 0
        assert admin_key not in page.page.content()

        # An ingest-only key, now allowed; then revoked after confirming.
        keys.get_by_test_id("key-name").fill("checkout agent")
        keys.get_by_test_id("key-scope-read").uncheck()
        keys.get_by_test_id("key-scope-ingest").check()
        keys.get_by_test_id("key-create").click()
        ingest_key = keys.get_by_test_id("new-key-value").input_value()
        keys.get_by_test_id("new-key-done").click()
        body = seed.request(seed.agent_run("checkout", steps=1)[1])
        with httpx.Client(base_url=server.url) as c:
            sent = c.post(
                "/v1/traces",
                content=body,
                headers={
                    "content-type": "application/x-protobuf",
                    "authorization": f"Bearer {ingest_key}",
                },
            )
            assert sent.status_code == 200, sent.text
        row = keys.locator("tr", has_text="checkout agent")
        row.get_by_test_id("revoke-key").click()
        row.get_by_test_id("revoke-key-confirm").click()
        row.get_by_test_id("key-state").get_by_text(re.compile("^revoked")).wait_for()
        states = {
            k["name"]: k["revoked"]
            for k in server.get("/api/v1/keys", headers=auth).json()["items"]
        }
        assert states == {"dashboard admin": False, "checkout agent": True}
        with httpx.Client(base_url=server.url) as c:
            refused = c.post(
                "/v1/traces",
                content=body,
                headers={
                    "content-type": "application/x-protobuf",
                    "authorization": f"Bearer {ingest_key}",
                },
            )
        assert refused.status_code == 401, refused.text
        page.shot("settings-keys")
        page.assert_clean()
