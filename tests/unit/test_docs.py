"""The README, CI and compose file promise things about the code; hold them to it."""

from __future__ import annotations

import re

import yaml
from click.testing import CliRunner

from shared.settings import Settings
from tests.support import REPO
from twostep.cli import main

README = (REPO / "README.md").read_text()


def env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    if alias is not None:
        return str(alias.choices[0])  # type: ignore[union-attr]
    return f"TWOSTEP_{field.upper()}"


def test_every_setting_is_in_the_configuration_table() -> None:
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = [env_name(f) for f in Settings.model_fields if f"`{env_name(f)}`" not in table]
    assert missing == []


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))
    assert f"\n{command}\n" in README
    assert "pytest" in command


def test_every_command_the_readme_names_exists() -> None:
    runner = CliRunner()
    for command in sorted(set(re.findall(r"`twostep (\w+)", README))):
        result = runner.invoke(main, [command, "--help"])
        assert result.exit_code == 0, f"twostep {command}: {result.output}"


def test_compose_runs_every_process_with_health_checks() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "postgres", "migrate", "api", "worker", "beat", "flower"} <= set(services)
    for name in ("redis", "postgres", "api", "worker", "flower"):
        assert "test" in services[name]["healthcheck"], name
    runner = CliRunner()
    for name in ("migrate", "api", "worker", "beat", "flower", "sandbox"):
        command = services[name]["command"]
        assert runner.invoke(main, [command[0], "--help"]).exit_code == 0, name
    for name in ("api", "worker", "beat", "flower"):
        assert (
            services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        )
