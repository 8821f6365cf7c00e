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


@pytest.mark.parametrize(
    ("warning", "critical", "setting"),
    [
        ({"health_error_rate_warning": 6.0}, {}, "PHAROS_HEALTH_ERROR_RATE_WARNING"),
        ({"health_p99_warning_ms": 5000.0}, {"health_p99_critical_ms": 4000.0}, "P99_WARNING_MS"),
        ({"health_alerts_warning": 4}, {}, "PHAROS_HEALTH_ALERTS_WARNING (4) is above"),
    ],
)
def test_a_health_warning_above_its_critical_threshold_is_refused(
    warning: dict[str, float], critical: dict[str, float], setting: str
) -> None:
    with pytest.raises(ValidationError, match=r"must not exceed the critical one") as info:
        Settings(**warning, **critical)
    assert setting in str(info.value)


def test_health_thresholds_may_be_equal_and_default_in_order() -> None:
    s = Settings(health_alerts_warning=2, health_alerts_critical=2, health_error_rate_warning=5.0)
    assert (s.health_alerts_warning, s.health_alerts_critical) == (2, 2)
    assert Settings().health_alerts_warning == 0


def test_every_health_setting_reaches_the_thresholds() -> None:
    from pharos.server.analytics.health import HealthThresholds

    names = {n for n in Settings.model_fields if n.startswith("health_")}
    values = {n: i + 1 for i, n in enumerate(sorted(names))}  # distinct and in order
    values["health_error_rate_critical"] = 50
    values["health_p99_critical_ms"] = 50
    values["health_alerts_critical"] = 50
    t = HealthThresholds.from_settings(Settings(**values))
    used = {
        "health_error_rate_warning": t.error_rate_warning,
        "health_error_rate_critical": t.error_rate_critical,
        "health_p99_warning_ms": t.p99_warning_ms,
        "health_p99_critical_ms": t.p99_critical_ms,
        "health_alerts_warning": t.alerts_warning,
        "health_alerts_critical": t.alerts_critical,
    }
    assert set(used) == names
    assert used == values
