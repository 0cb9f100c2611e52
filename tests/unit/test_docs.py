"""The README, CI and compose file promise things about the code; hold them to it."""

from __future__ import annotations

import re

import yaml
from click.testing import CliRunner

from api import errors
from shared.errors import TwostepError
from shared.kit.settings import Settings
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
    sandbox = yaml.safe_load((REPO / "compose.dev.yml").read_text())["services"]
    runner = CliRunner()
    for name, command in [
        *(
            (name, services[name]["command"])
            for name in ("migrate", "api", "worker", "webhooks", "beat")
        ),
        ("flower", services["flower"]["command"]),
        ("sandbox", sandbox["sandbox"]["command"]),
    ]:
        assert runner.invoke(main, [*command, "--help"]).exit_code == 0, name
    for name in ("api", "worker", "beat", "flower"):
        assert (
            services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        )


_SECRET_NAME = re.compile(r"PASSWORD|TOKEN|KEYS?\b|_AUTH\b|SECRET")


def test_production_compose_has_no_default_secret_and_exposes_nothing_in_the_clear() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    services = compose["services"]
    assert "sandbox" not in services, "the sandbox belongs to the development override"
    references = re.findall(r"\$\{([A-Z_]+)(:?[?-])([^}]*)\}", text)
    secrets = {(name, op, rest) for name, op, rest in references if _SECRET_NAME.search(name)}
    assert secrets, "no secret is referenced at all"
    for name, op, rest in secrets:
        if name.startswith("TWILIO_"):
            # Refused at start-up when missing (shared/kit/startup.py); blanked by the sandbox.
            assert (op, rest) == (":-", ""), name
        else:
            assert op == ":?", f"{name} must be required, not defaulted"
    redis = services["redis"]
    assert "--requirepass" in redis["command"], "Redis without a password"
    assert "@redis:" in services["api"]["environment"]["TWOSTEP_REDIS_URL"]
    assert services["api"]["environment"]["TWOSTEP_ENVIRONMENT"] == "production"
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_the_sandbox_override_is_development_and_gets_no_twilio_credentials() -> None:
    override = yaml.safe_load((REPO / "compose.dev.yml").read_text())["services"]
    for name in ("worker", "webhooks", "beat", "api"):
        environment = override[name]["environment"]
        assert environment["TWOSTEP_ENVIRONMENT"] == "development", name
        assert environment["TWILIO_AUTH_TOKEN"] == "" and environment["TWILIO_ACCOUNT_SID"] == ""
    assert override["worker"]["environment"]["TWOSTEP_TWILIO_BASE_URL"] == "http://sandbox:8765"
    assert all(str(p).startswith("127.0.0.1:") for p in override["sandbox"]["ports"])


def test_compose_sets_only_variables_twostep_reads() -> None:
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    known = {env_name(field) for field in Settings.model_fields} | set(
        re.findall(r"^\| `([A-Z_]+)`", table, re.MULTILINE)
    )
    for file in ("docker-compose.yml", "compose.dev.yml"):
        for name, service in yaml.safe_load((REPO / file).read_text())["services"].items():
            environment = service.get("environment") or {}
            unknown = {
                variable
                for variable in environment
                if variable.startswith(("TWOSTEP_", "TWILIO_")) and variable not in known
            }
            assert unknown == set(), f"{file}: {name} sets {unknown}, which nothing reads"


def test_the_scaling_guide_names_real_settings_and_metrics() -> None:
    guide = (REPO / "docs" / "scaling.md").read_text()
    settings = {env_name(field) for field in Settings.model_fields}
    named = set(re.findall(r"`(TWOSTEP_[A-Z_]+)", guide))
    assert named and named <= settings, named - settings
    metrics = set(re.findall(r"`(twostep_[a-z_]+)", guide))
    assert metrics and all(f"`{metric}" in README for metric in metrics), metrics


def test_the_readme_client_example_compiles_and_calls_real_methods() -> None:
    from twostep_client import TwostepClient

    section = README.split("## The Python client", 1)[1].split("\n## ", 1)[0]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    compile(example, "README.md", "exec")
    called = set(re.findall(r"twostep\.(\w+)\(", example))
    assert called and all(callable(getattr(TwostepClient, name, None)) for name in called), called


def _problem_codes_the_api_sends() -> set[str]:
    """Every problem ``code`` the API can put in an answer: the core's errors, the framework's
    statuses, and the codes the API writes itself."""
    codes = {errors._CODE_BY_STATUS[status] for status in errors._CODE_BY_STATUS}
    pending: list[type[TwostepError]] = list(TwostepError.__subclasses__())
    while pending:
        error = pending.pop()
        codes.add(error.code)
        pending.extend(error.__subclasses__())
    written = [
        r'problem\(\s*\d{3},\s*"([a-z_]+)"',
        r'"code": "([a-z_]+)"',
        r'\bcode = "([a-z_]+)"',
        r'\bcode = .* else "([a-z_]+)"',
    ]
    for path in (REPO / "api").rglob("*.py"):
        source = path.read_text()
        codes.update(code for pattern in written for code in re.findall(pattern, source))
    return codes


def test_every_problem_code_is_in_the_errors_table() -> None:
    table = README.split("Errors are `application/problem+json`", 1)[1].split("\n\n", 2)[1]
    in_table = set(re.findall(r"^\|.*\| \d{3} \| `([a-z_]+)` \|$", table, re.MULTILINE))
    sent = _problem_codes_the_api_sends()
    assert {"unauthorized", "payload_too_large", "method_not_allowed", "internal_error"} <= sent
    assert sent - in_table == set()
    assert in_table - sent == set(), "the table lists a code nothing sends"
