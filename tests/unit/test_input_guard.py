"""NUL characters in request input, and which database errors of a read are an outage (503)
rather than a bug (500): a syntax error caused by what a user typed must never look like the
database being away."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from pharos.server.db.engine import make_engine
from pharos.server.db.migrate import upgrade
from pharos.server.errors import unavailable
from pharos.server.input_guard import json_nul_paths, query_problem
from pharos.server.query.logs import BadFilter, LogFilter, fts_phrase, list_logs


def test_query_parameters_with_a_nul_are_named() -> None:
    assert query_problem(b"q=zz%00zz&agent=a") == "q"
    assert query_problem(b"agent=a&q=%00") == "q"
    assert query_problem(b"attr.%00x=1") == "attr.\\u0000x (a parameter name)"
    assert query_problem(b"q=%2500") is None  # the text "%00"
    assert query_problem(b"q=zz&agent=a") is None
    assert query_problem(b"") is None


def test_nuls_in_json_documents_are_located() -> None:
    doc = {"name": "ok", "labels": {"team": "a\x00"}, "list": ["x", {"k\x00": 1}]}
    assert list(json_nul_paths(doc)) == ["labels.team", "list.1.k\\u0000 (a key)"]
    assert list(json_nul_paths("\x00")) == ["body"]
    assert list(json_nul_paths({"a": [1, 2.5, None, True, "fine"]})) == []


def _sqlite_error(query: str) -> sqlite3.OperationalError:
    """A real error from SQLite's FTS5 (not a hand-made one)."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(body, tokenize='trigram')")
    try:
        conn.execute("SELECT rowid FROM t WHERE t MATCH ?", (query,)).fetchall()
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError(f"{query!r} did not fail")


@pytest.mark.parametrize("query", ['"zz\x00zz"', '"unclosed', "AND OR", "a:b"])
def test_a_sqlite_syntax_error_is_never_database_unavailable(query: str) -> None:
    raw = _sqlite_error(query)
    assert not unavailable(raw)
    assert not unavailable(OperationalError("SELECT ...", (), raw))  # as SQLAlchemy wraps it


@pytest.mark.parametrize(
    "message", ["database is locked", "unable to open database file", "disk I/O error"]
)
def test_transient_sqlite_errors_are_unavailable(message: str) -> None:
    raw = sqlite3.OperationalError(message)
    assert unavailable(raw) and unavailable(OperationalError("SELECT 1", (), raw))


def test_log_filters_with_a_nul_are_refused_before_any_sql(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        for flt in (LogFilter(q="zz\x00zz"), LogFilter(q="\x00"), LogFilter(agent="a\x00")):
            with pytest.raises(BadFilter, match="must not contain a NUL character"):
                list_logs(engine, flt, limit=10, cursor=None)
        assert list_logs(engine, LogFilter(q="zz"), limit=10, cursor=None)["items"] == []
    finally:
        engine.dispose()
    with pytest.raises(BadFilter):
        fts_phrase("a\x00")
    assert fts_phrase('say "hi"') == '"say ""hi"""'
