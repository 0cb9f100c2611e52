"""The README, the documentation site (docs/), CI and the compose file promise things about the
code; hold them to it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from api import errors
from shared.kit.settings import Settings
from shared.webhooks.domain import WebhookEvent
from tests.support import REPO, documented_metrics
from twostep import docs_config
from twostep.cli import main
from twostep.docs_config import OTHER_VARIABLES, env_name

README = (REPO / "README.md").read_text()
DOCS = REPO / "docs"


def page(name: str) -> str:
    return (DOCS / name).read_text()


def section(text: str, heading: str) -> str:
    """A ``## heading`` section of a page, up to the next one of its level."""
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def every_doc() -> dict[str, str]:
    """Every Markdown file that documents twostep, by its path in the repository."""
    paths = [
        REPO / "README.md",
        REPO / "CONTRIBUTING.md",
        REPO / "SECURITY.md",
        REPO / "sandbox" / "README.md",
        *sorted(DOCS.glob("*.md")),
    ]
    return {str(path.relative_to(REPO)): path.read_text() for path in paths}


# --- the configuration reference, generated from the settings


def test_every_setting_has_a_description() -> None:
    undescribed = [
        env_name(name)
        for name, field in Settings.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert undescribed == []


def test_every_setting_is_in_the_configuration_reference() -> None:
    reference = page("configuration.md")
    missing = [
        env_name(f) for f in Settings.model_fields if f"| `{env_name(f)}` |" not in reference
    ]
    assert missing == []


def test_the_configuration_reference_is_the_generators_output() -> None:
    assert page("configuration.md") == docs_config.render(), (
        "docs/configuration.md is stale: run .venv/bin/python -m twostep.docs_config"
    )


def test_every_setting_is_rendered_with_its_default_and_description() -> None:
    rendered = docs_config.render()
    for name, field in Settings.model_fields.items():
        row = next(line for line in rendered.splitlines() if f"| `{env_name(name)}` |" in line)
        cells = [cell.strip() for cell in row.strip().strip("|").split(" | ")]
        assert cells[1] == docs_config.default_of(field), name
        assert cells[2] and cells[2] == " ".join((field.description or "").split()), name
    groups = list(docs_config.groups())
    assert sum(len(group.model_fields) for group in groups) == len(Settings.model_fields)


_READS = re.compile(
    r'(?:environ\.get\(|environ\[|getenv\(|envvar=)\s*"((?:TWOSTEP|TWILIO)_[A-Z_]+)"'
)


def test_every_variable_read_from_the_environment_is_documented() -> None:
    """Beside the settings object, a few processes read a variable themselves; each is in the
    reference's table of those, which names only variables that something reads."""
    settings = {env_name(field) for field in Settings.model_fields}
    others = {variable.name: variable for variable in OTHER_VARIABLES}
    read: dict[str, set[str]] = {}
    for folder in ("api", "workers", "shared", "twostep", "sandbox"):
        for path in (REPO / folder).rglob("*.py"):
            for name in _READS.findall(path.read_text()):
                read.setdefault(name, set()).add(str(path.relative_to(REPO)))
    assert set(read) - settings - set(others) == set()
    for name, variable in others.items():
        assert variable.read_in in read.get(name, set()), (
            f"nothing in {variable.read_in} reads {name}"
        )
        assert f"| `{name}` |" in page("configuration.md"), name


# --- commands


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))
    assert f"\n{command}\n" in README
    assert "pytest" in command


def test_ci_builds_the_docs_with_warnings_as_errors() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^(?:\w+=\S* )*\.venv/bin/mkdocs build --strict\b", ci, re.MULTILINE), ci


def test_every_command_the_docs_name_exists() -> None:
    runner = CliRunner()
    named = {
        command
        for text in every_doc().values()
        for command in re.findall(r"`(?:\.venv/bin/)?twostep (\w[\w-]*)", text)
    }
    assert {"dev", "api", "worker", "beat", "keys", "tenants", "sandbox"} <= named
    for command in sorted(named):
        result = runner.invoke(main, [command, "--help"])
        assert result.exit_code == 0, f"twostep {command}: {result.output}"


# --- the compose files


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
    reference = page("configuration.md")
    known = set(re.findall(r"^\| `([A-Z_]+)`", reference, re.MULTILINE))
    assert {env_name(field) for field in Settings.model_fields} <= known
    assert {variable.name for variable in OTHER_VARIABLES} <= known
    for file in ("docker-compose.yml", "compose.dev.yml"):
        for name, service in yaml.safe_load((REPO / file).read_text())["services"].items():
            environment = service.get("environment") or {}
            unknown = {
                variable
                for variable in environment
                if variable.startswith(("TWOSTEP_", "TWILIO_")) and variable not in known
            }
            assert unknown == set(), f"{file}: {name} sets {unknown}, which nothing reads"


# --- metrics


def test_the_metrics_table_lists_every_metric_and_only_real_ones() -> None:
    from prometheus_client import REGISTRY

    import shared.kit.metrics  # noqa: F401 - registers every metric

    registered = {
        collector.name for collector in REGISTRY.collect() if collector.name.startswith("twostep_")
    }
    documented = {name.removesuffix("_total") for name in documented_metrics()}
    assert documented == registered


def test_the_scaling_guide_names_real_settings_and_metrics() -> None:
    guide = page("scaling.md")
    settings = {env_name(field) for field in Settings.model_fields}
    named = set(re.findall(r"`(TWOSTEP_[A-Z_]+)", guide))
    assert named and named <= settings, named - settings
    metrics = set(re.findall(r"`(twostep_[a-z_]+)", guide))
    assert metrics and metrics <= set(documented_metrics()), metrics - set(documented_metrics())


# --- the HTTP API, the client, webhooks


def test_the_client_example_compiles_and_calls_real_methods() -> None:
    from twostep_client import TwostepClient

    example = page("client.md").split("```python\n", 1)[1].split("```", 1)[0]
    compile(example, "docs/client.md", "exec")
    called = set(re.findall(r"twostep\.(\w+)\(", example))
    assert called and all(callable(getattr(TwostepClient, name, None)) for name in called), called


def _problem_codes_written_in_the_api() -> set[str]:
    """Every problem ``code`` the API's own source writes as a literal."""
    written = [
        r'problem\(\s*\d{3},\s*"([a-z_]+)"',
        r'"code": "([a-z_]+)"',
        r'\bcode = "([a-z_]+)"',
        r'\bcode = .* else "([a-z_]+)"',
    ]
    codes: set[str] = set()
    for path in (REPO / "api").rglob("*.py"):
        source = path.read_text()
        codes.update(code for pattern in written for code in re.findall(pattern, source))
    return codes


def test_every_problem_code_is_in_the_errors_table() -> None:
    table = section(page("api.md"), "Errors")
    in_table = set(re.findall(r"^\|.*\| \d{3} \| `([a-z_]+)` \|$", table, re.MULTILINE))
    # The document's enum is every code an answer can carry: the core's and the edge's own.
    sent = set(errors.problem_codes())
    assert _problem_codes_written_in_the_api() <= sent, "a code the enum does not list"
    assert {"unauthorized", "payload_too_large", "method_not_allowed", "internal_error"} <= sent
    assert sent - in_table == set()
    assert in_table - sent == set(), "the table lists a code nothing sends"


def test_the_webhooks_guide_names_every_event_and_only_real_ones() -> None:
    events = section(page("webhooks.md"), "Events").split("Each is `{")[0]
    named = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", events))
    assert named == {event.value for event in WebhookEvent}


# --- the site and the README as its front door


class _AnyTagLoader(yaml.SafeLoader):
    """mkdocs.yml's own tags (``!relative``) read as plain values."""


def _any_tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    return loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None


_AnyTagLoader.add_multi_constructor("!", _any_tag)


def _nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [name for item in nav for name in _nav_pages(item)]
    if isinstance(nav, dict):
        return [name for value in nav.values() for name in _nav_pages(value)]
    return []


def test_the_site_lists_every_page_once() -> None:
    config = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=_AnyTagLoader)  # noqa: S506
    assert config["docs_dir"] == "docs" and config["theme"]["name"] == "material"
    listed = _nav_pages(config["nav"])
    assert len(listed) == len(set(listed))
    assert set(listed) == {path.name for path in DOCS.glob("*.md")}


def test_included_files_exist() -> None:
    for name, text in every_doc().items():
        for included in re.findall(r'^--8<-- "([^"]+)"$', text, re.MULTILINE):
            path, _, section = included.partition(":")
            assert (REPO / path).is_file(), f"{name} includes {included}"
            if section:  # a part of the file, between its markers
                marked = (REPO / path).read_text()
                assert f"--8<-- [start:{section}]" in marked, f"{name} includes {included}"
                assert f"--8<-- [end:{section}]" in marked, f"{name} includes {included}"


def test_the_readme_is_a_front_door_whose_links_lead_somewhere() -> None:
    assert len(README.splitlines()) <= 250
    targets = re.findall(r"\]\(((?!https?://)[^)#]+)(?:#[^)]*)?\)", README)
    assert any(target.startswith("docs/") for target in targets)
    for target in targets:
        assert (REPO / target).exists(), target
    for name, text in every_doc().items():
        if name.startswith("docs/"):
            continue
        for target in re.findall(r"\]\(((?!https?://)[^)#]+)(?:#[^)]*)?\)", text):
            assert (REPO / Path(name).parent / target).exists(), f"{name}: {target}"


def test_compose_workers_serve_metrics_where_prometheus_reaches_them() -> None:
    """Inside a container, 127.0.0.1 is the container's own: Prometheus on the compose network
    would find nothing there."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for name in ("worker", "webhooks", "beat"):
        environment = compose["services"][name]["environment"]
        assert environment["TWOSTEP_METRICS_HOST"] == "0.0.0.0", name
