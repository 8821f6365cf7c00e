"""Every route of the app maps to a scope through an explicit rule (none falls through to the
fail-closed default), and the key helpers behave."""

from __future__ import annotations

import pytest

from pharos.server.access.keys import ApiKey, key_hash, looks_like_key, parse_scopes
from pharos.server.access.middleware import presented_key
from pharos.server.access.scopes import PUBLIC, required_scope
from tests.unit.test_docs import ROUTES

EXPECTED = {
    ("POST", "/v1/traces"): "ingest",
    ("POST", "/v1/metrics"): "ingest",
    ("GET", "/api/v1/traces"): "read",
    ("", "/api/v1/live"): "read",
    ("GET", "/api/v1/stream"): "read",
    ("GET", "/metrics"): "read",
    ("POST", "/api/v1/alerts/rules"): "admin",
    ("POST", "/api/v1/prices"): "admin",
    ("PUT", "/api/v1/budgets/{budget_id}"): "admin",
    ("GET", "/api/v1/keys"): "admin",
    ("POST", "/api/v1/keys"): "admin",
    ("GET", "/api/v1/agents/registry"): "read",
    ("POST", "/api/v1/agents/registry"): "admin",
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("POST", "/api/v1/auth/login"): PUBLIC,
}


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES, key=lambda r: (r[1], r[0])))
def test_every_route_maps_to_an_explicit_rule(method: str, path: str) -> None:
    scope, rule = required_scope(method or "GET", path)
    assert rule != "default (fail closed)", f"{method} {path} has no explicit access rule"
    assert scope in {"ingest", "read", "admin", PUBLIC}


@pytest.mark.parametrize(("route", "scope"), sorted(EXPECTED.items()))
def test_known_routes_need_the_documented_scope(route: tuple[str, str], scope: str) -> None:
    method, path = route
    assert (method, path) in ROUTES
    assert required_scope(method or "GET", path)[0] == scope


def test_unknown_paths_fail_closed_and_dashboard_files_are_public() -> None:
    assert required_scope("GET", "/")[0] == PUBLIC
    assert required_scope("GET", "/assets/index.js")[0] == PUBLIC
    assert required_scope("POST", "/whatever") == ("admin", "default (fail closed)")
    assert required_scope("GET", "/api/v2/x") == ("admin", "default (fail closed)")
    assert required_scope("DELETE", "/api/v1/traces/x")[0] == "admin"


def test_scopes_parse_and_admin_allows_everything() -> None:
    assert parse_scopes("ingest, READ") == frozenset({"ingest", "read"})
    for bad in ("", "write", "ingest,root"):
        with pytest.raises(ValueError):
            parse_scopes(bad)
    admin = ApiKey(1, "a", "phk_x", frozenset({"admin"}), 0, None, None)
    reader = ApiKey(2, "r", "phk_y", frozenset({"read"}), 0, None, None)
    assert all(admin.allows(s) for s in ("ingest", "read", "admin"))
    assert reader.allows("read") and not reader.allows("ingest") and not reader.allows("admin")


def test_key_hash_is_keyed_and_keys_are_recognised() -> None:
    key = "phk_" + "a" * 43
    assert key_hash(b"s1", key) != key_hash(b"s2", key)
    assert len(key_hash(b"s1", key)) == 64
    assert looks_like_key(key)
    assert not looks_like_key("abc") and not looks_like_key("phk_short")


def test_presented_key_sources() -> None:
    assert presented_key([(b"authorization", b"Bearer phk_1")]) == "phk_1"
    assert presented_key([(b"x-api-key", b"phk_2")]) == "phk_2"
    assert presented_key([(b"cookie", b"a=b; pharos_session=phk_3")]) == "phk_3"
    assert presented_key([(b"cookie", b"\x00bad")]) is None
    assert presented_key([(b"authorization", b"Basic abc")]) is None
