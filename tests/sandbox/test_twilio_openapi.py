"""The sandbox's Factors API against Twilio's own OpenAPI description, fuzzed by schemathesis over
HTTP: no 5xx, every answer of the content type and schema Twilio documents, every refusal
Twilio's error body (``twilio_openapi_hooks.py``).

The document is Twilio's, trimmed to the operations the sandbox serves
(``tests/data/twilio_verify_v2_factors_openapi.json``, written by
``tests/data/extract_twilio_schemas.py``). Left to itself, schemathesis would draw a random
``VA…`` service, identity and ``YF…``/``YC…`` SID, and nearly every request would end in the
same 404: so most of them (not all: an unknown service, entity or factor is worth asking too)
name a service made for the run, one identity, and that identity's factors (verified,
unverified, one to delete) and challenges (pending, approved), made before it starts; and
most factors it makes are TOTP ones, the sandbox's only type. Half of them are made with
schemathesis's own identities: any identity makes an entity, and one of them (a space in it)
is how this test found the sandbox's ``url`` that was no URI. Bounded in time, from a fixed
seed; the cases worth keeping are regular tests in ``test_totp_factors.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyotp
import pytest

from sandbox.factor_routes import FactorRoutes
from tests.cluster import report  # noqa: F401 - fixture
from tests.sandbox.conftest import ACCOUNT_SID, AUTH_TOKEN, DATA
from tests.support import ThreadedServer

SPEC = DATA / "twilio_verify_v2_factors_openapi.json"
HOOKS = Path(__file__).with_name("twilio_openapi_hooks.py")
CHECKS = (
    "not_a_server_error",
    "content_type_conformance",
    "response_schema_conformance",
    "twilio_error_body",  # the hooks' own
)
# The share of cases that name the run's service, identity and SIDs (and, creating a factor,
# ask for a TOTP one: the only type the sandbox makes); the rest draw their own.
GIVEN = 0.85
# Any identity of Twilio's alphabet makes an entity: half the factors are made with
# schemathesis's own identities (most of them refused, some taken), half in the run's entity.
GIVEN_TO_CREATE = 0.5
# Verified factors made for the run (challenges can be made only to those), each with a pending
# challenge (five wrong codes use one up).
VERIFIED = 3


class Seeds:
    """A service of the run's own, and one identity's factors and challenges in it: of every
    status schemathesis cannot reach by itself (it knows no code)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10)
        self.service = self._post("/v2/Services", FriendlyName="twilio openapi")["sid"]
        self.identity = f"fuzz-{uuid.uuid4().hex}"
        self._totp: dict[str, pyotp.TOTP] = {}
        self.verified = [self._factor(verify=True) for _ in range(VERIFIED)]
        self.unverified = [self._factor(), self._factor()]
        self.doomed = self._factor()
        self.challenges = [self._challenge(sid) for sid in self.verified]
        self.challenges.append(self._challenge(self.verified[0], approved=True))

    @property
    def _entity(self) -> str:
        return f"/v2/Services/{self.service}/Entities/{self.identity}"

    def _post(self, path: str, **form: str) -> dict[str, Any]:
        response = self.http.post(path, data=form)
        assert response.status_code in (200, 201), response.text
        body: dict[str, Any] = response.json()
        return body

    def _factor(self, *, verify: bool = False) -> str:
        created = self._post(f"{self._entity}/Factors", FriendlyName="fuzz", FactorType="totp")
        sid: str = created["sid"]
        self._totp[sid] = pyotp.TOTP(created["binding"]["secret"])
        if verify:
            answer = self._post(f"{self._entity}/Factors/{sid}", AuthPayload=self._totp[sid].now())
            assert answer["status"] == "verified"
        return sid

    def _challenge(self, factor: str, *, approved: bool = False) -> str:
        code = {"AuthPayload": self._totp[factor].now()} if approved else {}
        made = self._post(f"{self._entity}/Challenges", FactorSid=factor, **code)
        assert made["status"] == ("approved" if approved else "pending")
        sid: str = made["sid"]
        return sid

    def config(self) -> str:
        """schemathesis's configuration: each value above in ``GIVEN`` of the cases (a given
        value is always one the document allows; the negative cases draw their own)."""

        def given(name: str, probability: float = GIVEN) -> str:
            return f'{{ dictionary = "{name}", probability = {probability} }}'

        identity = f'"path.Identity" = {given("identities")}'
        dictionaries = {
            "services": [self.service],
            "identities": [self.identity],
            "factors": [*self.verified, *self.unverified],
            "doomed": [self.doomed],
            "challenges": self.challenges,
            "totp": ["totp"],
        }
        return "\n".join(
            [
                *(f"[dictionaries.{n}]\nvalues = {json.dumps(v)}" for n, v in dictionaries.items()),
                "[parameters]",
                f'"path.ServiceSid" = {given("services")}',
                f'"body.FactorSid" = {given("factors")}',
                '[[operations]]\ninclude-operation-id = "CreateNewFactor"',
                f'parameters = {{ "path.Identity" = {given("identities", GIVEN_TO_CREATE)}, '
                f'"body.FactorType" = {given("totp")} }}',
                '[[operations]]\ninclude-operation-id = "CreateChallenge"',
                f"parameters = {{ {identity} }}",
                '[[operations]]\ninclude-operation-id = ["FetchFactor", "UpdateFactor"]',
                f'parameters = {{ {identity}, "path.Sid" = {given("factors")} }}',
                '[[operations]]\ninclude-operation-id = "DeleteFactor"',
                f'parameters = {{ {identity}, "path.Sid" = {given("doomed")} }}',
                # The stateful phase would delete every factor above it meets, one by one.
                "phases = { stateful = { enabled = false } }",
                '[[operations]]\ninclude-operation-id = ["FetchChallenge", "UpdateChallenge"]',
                f'parameters = {{ {identity}, "path.Sid" = {given("challenges")} }}',
            ]
        )


@pytest.fixture
def seeds(sandbox_server: ThreadedServer) -> Iterator[Seeds]:
    made = Seeds(sandbox_server.url)
    yield made
    made.http.close()


def run_schemathesis(url: str, config: Path, report_dir: Path) -> subprocess.CompletedProcess[str]:
    options = {
        "--url": url,
        "--auth": f"{ACCOUNT_SID}:{AUTH_TOKEN}",
        "--checks": ",".join(CHECKS),
        # About two thousand cases in 45 s, fuzzing and stateful phases repeated to fill it.
        "--max-examples": "25",
        "--max-time": "45",
        "--seed": "20261207",
        # One thread, as tests/e2e/test_contract.py explains (gh-106905 on CPython < 3.11.8).
        "--workers": "1",
        "--request-timeout": "10",
        "--report": "ndjson",
        "--report-dir": str(report_dir),
        "--suppress-health-check": "all",
        "--generation-database": "none",
    }
    run = [str(SPEC), *(arg for option in options.items() for arg in option), "--no-color"]
    return subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", *run],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=report_dir,  # nothing of the run's is left in the repository
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
    )


def test_the_document_has_exactly_the_operations_the_sandbox_serves() -> None:
    sandbox_path = {"{ServiceSid}": "{service_sid}", "{Identity}": "{identity}", "{Sid}": "{sid}"}
    documented = set()
    for path, item in json.loads(SPEC.read_text())["paths"].items():
        for name, ours in sandbox_path.items():
            path = path.replace(name, ours)
        documented |= {(path, m.upper(), op["operationId"]) for m, op in item.items()}
    routes = FactorRoutes(None, None).routes()  # type: ignore[arg-type]
    assert documented == {(path, method, name) for path, method, name, _ in routes}


def test_the_factors_api_keeps_to_twilios_openapi_document(
    seeds: Seeds,
    sandbox_server: ThreadedServer,
    tmp_path: Path,
    report: Any,  # noqa: F811 - the fixture imported above
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(seeds.config())
    result = run_schemathesis(sandbox_server.url, config, tmp_path)
    (tmp_path / "schemathesis.log").write_text(result.stdout + result.stderr)
    by_operation = _answers(tmp_path)
    cases = sum(sum(statuses.values()) for statuses in by_operation.values())
    report(
        "schemathesis: the sandbox's Factors API against Twilio's OpenAPI",
        cases=cases,
        server_errors=sum(
            n for statuses in by_operation.values() for s, n in statuses.items() if s >= 500
        ),
        answers={name: dict(sorted(statuses.items())) for name, statuses in by_operation.items()},
        exit_code=result.returncode,
    )
    assert cases > 300, result.stdout[-3000:]
    assert not [s for statuses in by_operation.values() for s in statuses if s >= 500]
    assert result.returncode == 0, result.stdout[-6000:]
    # The seeds did their job: every operation got past the 404s to its logic at least once.
    unreached = [
        name
        for name in json.loads(SPEC.read_text())["info"]["x-operations"]
        if not any(200 <= s < 300 for s in by_operation.get(name, {}))
    ]
    assert not unreached, by_operation


def _answers(report_dir: Path) -> dict[str, dict[int, int]]:
    """Per operation (any other method on its paths: ``other``), how many answers of each
    status, whatever the phase, from the ndjson report."""
    operations = [
        (method.upper(), re.compile(re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), op["operationId"])
        for path, item in json.loads(SPEC.read_text())["paths"].items()
        for method, op in item.items()
    ]
    events = [
        json.loads(line) for p in report_dir.glob("*.ndjson") for line in p.read_text().splitlines()
    ]
    found: dict[str, dict[int, int]] = {}
    for exchange in _exchanges(events):
        method, path = exchange["request"]["method"], urlsplit(exchange["request"]["uri"]).path
        name = next((n for m, p, n in operations if m == method and p.match(path)), "other")
        status = exchange["response"]["status_code"]
        statuses = found.setdefault(name, {})
        statuses[status] = statuses.get(status, 0) + 1
    return found


def _exchanges(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        response = node.get("response")
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            yield node
        for value in node.values():
            yield from _exchanges(value)
    elif isinstance(node, list):
        for value in node:
            yield from _exchanges(value)
