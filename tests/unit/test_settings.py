"""Settings validation: clear errors for bad values, lenient where users would expect it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pharos.server.settings import Settings


def test_log_level_is_checked_and_case_insensitive() -> None:
    assert Settings(log_level="WARNING").log_level == "warning"
    with pytest.raises(ValidationError, match="log_level"):
        Settings(log_level="verbose")


def test_sqlite_synchronous_is_case_insensitive() -> None:
    assert Settings(sqlite_synchronous="normal").sqlite_synchronous == "NORMAL"  # type: ignore[arg-type]


def test_postgres_url_spellings_are_accepted() -> None:
    for url in ("postgres://u@h/db", "postgresql://u@h/db", "postgresql+psycopg://u@h/db"):
        assert Settings(database_url=url).database_url == url
    with pytest.raises(ValidationError, match="database_url"):
        Settings(database_url="mysql://u@h/db")


def test_in_memory_sqlite_is_refused_for_serving() -> None:
    settings = Settings(database_url="sqlite://")
    with pytest.raises(ValueError, match="in-memory"):
        settings.check_servable()
    Settings(database_url="sqlite:///./x.db").check_servable()
