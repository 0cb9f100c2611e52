"""The Kubernetes manifests (deploy/kubernetes): they render with kubectl's kustomize, every
object validates against the Kubernetes schemas, and what they run is what the code is — the
commands the CLI has, the settings production refuses to start without, the ports and probe
paths the processes serve. No cluster: kubectl only renders. Without kubectl these tests skip,
except in CI (``CI=true``), where they fail."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography.fernet import Fernet

from api.routes import health
from shared.kit.settings import Settings
from shared.kit.startup import Process, startup_problems
from tests.support import REPO
from twostep.cli import main

KUSTOMIZATIONS = {
    "base": REPO / "deploy" / "kubernetes" / "base",
    "production": REPO / "deploy" / "kubernetes" / "overlays" / "production",
}
KUBERNETES_VERSION = "1.32.0"
# What the operator's secret holds, as a real one would (the checks refuse placeholders).
SECRET_VALUES = {
    "TWOSTEP_DATABASE_URL": "postgresql://twostep:Hx4kq8Zr2Lm9@postgres.db:5432/twostep",
    "TWOSTEP_REDIS_URL": "redis://:Vb7nQ2xT5yW8@redis.db:6379/0",
    "TWOSTEP_DATA_KEYS": Fernet.generate_key().decode(),
    "TWOSTEP_LOOKUP_KEY": "k3Jq9Xv2Lp8Rt5Wm1Zc7Nb4Hd6Fg0Sa2",
    "TWILIO_ACCOUNT_SID": "AC" + "5a" * 16,
    "TWILIO_AUTH_TOKEN": "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "TWILIO_VERIFY_SERVICE_SID": "VA" + "c3" * 16,
}


def render(name: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kubectl is not on PATH; CI must render the manifests")
        pytest.skip("kubectl is not on PATH (it carries kustomize)")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(KUSTOMIZATIONS[name])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


@pytest.fixture(scope="module", params=sorted(KUSTOMIZATIONS))
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(str(request.param))


def containers(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(object name, container) for every container and init container of every workload."""
    for obj in objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec")
        if pod is None:
            continue
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            yield obj["metadata"]["name"], container


def environment(objects: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """What the container's process finds in its environment."""
    config_maps = {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert "secretRef" not in source, "secrets are named key by key, to be checked"
        env.update(config_maps[source["configMapRef"]["name"]])
    for variable in container.get("env", []):
        secret = variable["valueFrom"]["secretKeyRef"]
        assert secret["name"] == "twostep-secrets"
        env[variable["name"]] = SECRET_VALUES[secret["key"]]
    return env


def test_every_object_validates_against_the_kubernetes_schemas(
    objects: list[dict[str, Any]],
) -> None:
    kinds = sorted(obj["kind"] for obj in objects)
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    for kind in ("Deployment", "Job", "Service", "PodDisruptionBudget", "NetworkPolicy"):
        assert kind in kinds
    assert "HorizontalPodAutoscaler" in kinds
    # Secrets are referenced, never shipped; the sandbox never runs here.
    assert "Secret" not in kinds
    assert not any(c["args"][0] == "sandbox" for _, c in containers(objects))


def test_every_container_runs_the_image_the_dockerfile_builds(
    objects: list[dict[str, Any]],
) -> None:
    """One image for every process, whose entry point is the ``twostep`` command: a
    container's ``args`` are a twostep command line."""
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["twostep"]' in dockerfile
    images = {container["image"] for _, container in containers(objects)}
    assert len(images) == 1 and next(iter(images)).startswith("ghcr.io/example/twostep:")
    assert all("command" not in container for _, container in containers(objects))


def test_every_process_has_what_production_requires(
    objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in list(os.environ):
        if variable.startswith(("TWOSTEP_", "TWILIO_")):
            monkeypatch.delenv(variable)
    commands = set(main.list_commands(None))  # type: ignore[arg-type]
    for name, container in containers(objects):
        command = container["args"][0]
        assert command in commands, f"{name}: twostep has no command {command!r}"
        env = environment(objects, container)
        assert env.get("TWOSTEP_ENVIRONMENT") == "production", name
        # Not refused at start-up (shared/kit/startup.py), and never the development defaults.
        assert {"TWOSTEP_DATABASE_URL", "TWOSTEP_REDIS_URL"} <= set(env), name
        with monkeypatch.context() as patched:
            for variable, value in env.items():
                patched.setenv(variable, value)
            settings = Settings()
        processes: dict[str, Process] = {
            "api": "api", "worker": "worker", "beat": "beat", "migrate": "migrate"
        }  # fmt: skip
        assert command in processes, name
        assert startup_problems(settings, processes[command]) == [], name


def test_ports_probes_and_scrapes_match_the_code(objects: list[dict[str, Any]]) -> None:
    paths = {getattr(route, "path", None) for route in health.router.routes}
    defaults = Settings.model_fields
    metrics_ports = {
        "worker": defaults["worker_metrics_port"].default,
        "beat": defaults["beat_metrics_port"].default,
    }
    for obj in objects:
        template = obj.get("spec", {}).get("template")
        if template is None or obj["kind"] != "Deployment":
            continue
        [container] = template["spec"]["containers"]
        command, ports = container["args"][0], {p["containerPort"] for p in container["ports"]}
        scraped = int(template["metadata"]["annotations"]["prometheus.io/port"])
        if command == "api":
            argv = container["args"]
            assert int(argv[argv.index("--port") + 1]) in ports == {scraped}
            for probe in ("livenessProbe", "readinessProbe"):
                assert container[probe]["httpGet"]["path"] in paths
            assert template["metadata"]["annotations"]["prometheus.io/path"] in paths
        else:
            assert ports == {scraped} == {metrics_ports[command]}, obj["metadata"]["name"]
        assert container["resources"]["requests"], obj["metadata"]["name"]


def test_long_polls_and_jobs_fit_the_grace_periods(objects: list[dict[str, Any]]) -> None:
    from shared.verifications.waiting import MAX_WAIT_SECONDS

    graces = {
        obj["metadata"]["name"]: obj["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        for obj in objects
        if obj["kind"] == "Deployment"
    }
    assert graces["twostep-api"] > MAX_WAIT_SECONDS
    assert graces["twostep-worker"] >= 45
    beat = next(obj for obj in objects if obj["metadata"]["name"] == "twostep-beat")
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"


def test_the_manifests_are_in_the_repository() -> None:
    for directory in KUSTOMIZATIONS.values():
        assert Path(directory, "kustomization.yaml").is_file()
