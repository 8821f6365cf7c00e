"""``GET /api/v1/prices?model=``: how a name is matched and priced, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.conftest import RunningServer, ServerFactory


def test_a_matched_price_names_its_vendor(server: RunningServer) -> None:
    got = server.get("/api/v1/prices", params={"model": "openai/gpt-4o-2024-08-06"}).json()
    assert got["matched"] == "gpt-4o"
    assert got["price"]["vendor"] == "openai"
    assert got["history"][0]["vendor"] == "openai"
    assert got["price"]["input_usd_per_mtok"] == "2.5"

    got = server.get("/api/v1/prices", params={"model": "deepseek/deepseek-chat"}).json()
    assert (got["matched"], got["price"]["vendor"]) == ("deepseek-chat", "deepseek")

    # an override of a bundled model keeps the model's vendor; a model of your own has none
    for body, vendor in (
        ({"model": "GPT-4o", "input": "3", "output": "12", "effective_from": "always"}, "openai"),
        ({"model": "my-model", "input": "1", "output": "1", "effective_from": "always"}, None),
    ):
        r = server.post("/api/v1/prices", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["vendor"] == vendor
    got = server.get("/api/v1/prices", params={"model": "gpt-4o-2024-11-20"}).json()
    assert got["price"]["source"] == "override"
    assert got["price"]["vendor"] == "openai"
    got = server.get("/api/v1/prices", params={"model": "my-model"}).json()
    assert got["price"]["vendor"] is None


def test_realtime_and_local_models_are_not_priced_as_their_family(server: RunningServer) -> None:
    for name in ("gpt-4o-realtime-preview", "llama3.1:70b"):
        got = server.get("/api/v1/prices", params={"model": name}).json()
        assert (got["matched"], got["price"], got["history"]) == (None, None, []), name


def test_aliases_list_the_bundled_ones_and_yours(make_server: ServerFactory) -> None:
    server = make_server(model_aliases={"prod-gpt4o": "gpt-4o", "cohere.command-r-v1:0": "x"})
    aliases = server.get("/api/v1/prices").json()["aliases"]
    assert aliases["prod-gpt4o"] == "gpt-4o"
    assert aliases["cohere.command-r-v1:0"] == "x"  # yours replaces the bundled one
    assert aliases["cohere.command-r-plus-v1:0"] == "command-r-plus-04-2024"
