"""The deployment kit in deploy/, checked with the tools that read it (Docker itself cannot run
here): the compose file parses and wires two instances to PostgreSQL + Redis behind Caddy with
Prometheus and Grafana, `caddy validate` accepts the Caddyfile, `promtool check config` the
scrape config, `systemd-analyze verify` the unit, and the Dockerfile's stages copy what exists."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REQUIRE_SERVICES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        if REQUIRE_SERVICES:
            pytest.fail(f"{name} is required in CI (Debian package {package})")
        pytest.skip(f"{name} not installed (apt-get install {package})")
    return path


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_runs_two_instances_behind_a_proxy_with_monitoring() -> None:
    services = _compose()["services"]
    assert set(services) >= {
        "postgres",
        "redis",
        "migrate",
        "pharos-1",
        "pharos-2",
        "caddy",
        "prometheus",
        "grafana",
    }
    for name in ("pharos-1", "pharos-2"):
        svc = services[name]
        env = svc["environment"]
        assert env["PHAROS_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "@postgres:5432/" in env["PHAROS_DATABASE_URL"]
        assert env["PHAROS_REDIS_URL"] == "redis://redis:6379/0"
        assert env["PHAROS_AUTO_MIGRATE"] == "false"  # the migrate service upgrades once
        assert svc["command"] == ["serve"]
        assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]
    # Every file mounted into a container is in the kit (secrets are made at install time).
    for name in ("caddy", "prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if "secrets/" not in source:
                assert (DEPLOY / source).exists(), source
    grafana_mounts = " ".join(services["grafana"]["volumes"])
    assert "grafana/pharos-dashboard.json" in grafana_mounts


def test_caddy_balances_both_instances_with_readyz_health_checks(tmp_path: Path) -> None:
    caddyfile = (DEPLOY / "caddy" / "Caddyfile").read_text()
    assert "reverse_proxy pharos-1:4318 pharos-2:4318" in caddyfile
    assert "health_uri /readyz" in caddyfile
    assert "h2c://pharos-1:4317 h2c://pharos-2:4317" in caddyfile
    caddy = _tool("caddy", "caddy")
    result = subprocess.run(
        [
            caddy,
            "validate",
            "--config",
            str(DEPLOY / "caddy" / "Caddyfile"),
            "--adapter",
            "caddyfile",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


def test_prometheus_scrapes_both_instances(tmp_path: Path) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["pharos-1:4318", "pharos-2:4318"]
    assert job["authorization"]["type"] == "Bearer"  # /metrics needs a read key
    # promtool resolves the container paths: point them at copies in a scratch directory.
    text = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    shutil.copy(DEPLOY / "prometheus" / "rules.yml", tmp_path / "rules.yml")
    (tmp_path / "pharos.key").write_text("phk_example\n")
    text = text.replace("/etc/prometheus/", f"{tmp_path}/")
    (tmp_path / "prometheus.yml").write_text(text)
    promtool = _tool("promtool", "prometheus")
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_grafana_provisioning_points_at_the_dashboard() -> None:
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/pharos.yml").read_text())[
        "providers"
    ][0]
    mount = next(
        v for v in _compose()["services"]["grafana"]["volumes"] if "pharos-dashboard.json" in v
    )
    assert mount.split(":")[1].startswith(provider["options"]["path"] + "/")
    source = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    dashboard = (DEPLOY / "grafana/pharos-dashboard.json").read_text()
    # ${DS_PROMETHEUS} resolves through a datasource variable when provisioned from a file.
    assert '"name": "DS_PROMETHEUS"' in dashboard and '"type": "datasource"' in dashboard


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = _tool("systemd-analyze", "systemd")
    unit = (DEPLOY / "systemd" / "pharos.service").read_text()
    assert "KillMode=mixed" in unit and "ExecStartPre=/opt/pharos/bin/pharos db upgrade" in unit
    # verify checks that the binaries exist: point them at this checkout's `pharos`.
    pharos = Path(sys.executable).with_name("pharos")
    assert pharos.exists()
    (tmp_path / "pharos.service").write_text(unit.replace("/opt/pharos/bin/pharos", str(pharos)))
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "pharos.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "pharos.service" in line and "Unknown user" not in line
    ]
    assert result.returncode == 0 or not problems, result.stdout + result.stderr
    assert not problems, problems


def test_dockerfile_builds_the_dashboard_then_installs_the_server() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?", text, flags=re.M)
    assert [s[1] for s in stages] == ["web", "build", ""]
    assert stages[0][0].startswith("node:")
    assert "npm ci" in text and "npm run build" in text
    assert 'pip install ".[server]"' in text
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.M):
        assert (ROOT / source).exists(), source
    # The web stage builds into ../src/pharos/server/web/dist relative to /src/web.
    vite = (ROOT / "web" / "vite.config.ts").read_text()
    assert 'outDir: "../src/pharos/server/web/dist"' in vite
    assert "COPY --from=web /src/src/pharos/server/web/dist" in text
    # ... and the wheel keeps the git-ignored build output.
    assert 'artifacts = ["src/pharos/server/web/dist/**"]' in (ROOT / "pyproject.toml").read_text()
    assert 'CMD ["serve"]' in text and "HEALTHCHECK" in text and "/readyz" in text
