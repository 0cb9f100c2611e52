"""A client generated from the API's own ``/openapi.json`` (openapi-python-client, nothing
written by hand) plays the enrol-and-login story against the real sandbox, worker and API. The
codes come from the sandbox's inbox; everything else goes through the generated functions and
models. A document that is wrong or incomplete fails here: the generator warns, a function is
missing a parameter, or a typed model cannot read an answer."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import System
from tests.support import random_phone

PACKAGE = "twostep_generated_client"
# No post-hooks: the generator's default runs ruff over the code, which the test does not need.
CONFIG = f"package_name_override: {PACKAGE}\npost_hooks: []\n"
MODULES = {
    "client": "client",
    "models": "models",
    "enroll_factor": "api.two_step_authentication.enroll_factor",
    "list_factors": "api.two_step_authentication.list_factors",
    "start_challenge": "api.two_step_authentication.start_challenge",
    "read_verification": "api.verifications.read_verification",
    "create_check": "api.verifications.create_check",
}


def generate(document: Path, into: Path) -> subprocess.CompletedProcess[str]:
    config = document.with_name("openapi-python-client.yml")
    config.write_text(CONFIG)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(document),
            "--output-path",
            str(into),
            "--meta",
            "none",
            "--config",
            str(config),
            "--fail-on-warning",  # a warning is a part of the document it could not express
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def generated(system: System, tmp_path: Path) -> Iterator[SimpleNamespace]:
    """The generated package, imported; forgotten again afterwards (the next database's run
    generates its own)."""
    document = tmp_path / "openapi.json"
    answer = httpx.get(
        f"{system.api_url}/openapi.json",
        headers={"Authorization": f"Bearer {system.api_key}"},
        timeout=10,
    )
    answer.raise_for_status()
    document.write_bytes(answer.content)
    started = time.perf_counter()
    result = generate(document, tmp_path / "generated" / PACKAGE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "generated" / PACKAGE / "client.py").exists()
    sys.path.insert(0, str(tmp_path / "generated"))
    try:
        modules = {name: importlib.import_module(f"{PACKAGE}.{m}") for name, m in MODULES.items()}
        yield SimpleNamespace(seconds=time.perf_counter() - started, **modules)
    finally:
        sys.path.remove(str(tmp_path / "generated"))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def test_a_generated_client_enrols_a_phone_and_logs_in(
    system: System, generated: SimpleNamespace, report: Any
) -> None:
    models: ModuleType = generated.models
    client = generated.client.AuthenticatedClient(
        base_url=system.api_url,
        token=system.api_key,
        timeout=httpx.Timeout(40.0),  # longer than the longest ?wait=
        raise_on_unexpected_status=True,  # a status the document does not list fails the test
    )
    user_id, phone = f"gen-{uuid.uuid4().hex[:8]}", random_phone()
    with client as api:
        # Enrolment: the phone is stored unverified and sent a code; its approval turns 2SA on.
        enrolment = generated.enroll_factor.sync_detailed(
            user_id, client=api, body=models.PhoneFactorCreate(phone=phone)
        )
        assert enrolment.status_code == 202
        enrolled = enrolment.parsed
        assert isinstance(enrolled, models.FactorEnrollmentOut)
        assert enrolled.factor.status is models.FactorStatus.UNVERIFIED
        assert enrolled.verification.purpose is models.Purpose.ENROLLMENT
        assert enrolled.factor.phone == enrolled.verification.to != phone  # masked
        _wait_until_pending(generated, api, enrolled.verification.id)
        approved = _check(
            generated, api, enrolled.verification.id, system.sandbox.latest_code(phone)
        )
        assert approved.status is models.CheckStatus.APPROVED

        factors = generated.list_factors.sync(user_id, client=api)
        assert isinstance(factors, models.FactorsOut) and factors.two_step_enabled is True
        assert [factor.status for factor in factors.factors] == [models.FactorStatus.VERIFIED]
        assert factors.factors[0].verified_at is not None

        # Login: a challenge to the verified phone; a wrong code, then the right one.
        challenge = generated.start_challenge.sync_detailed(
            user_id, client=api, body=models.ChallengeCreate(client_ip="203.0.113.9")
        )
        assert challenge.status_code == 202
        login = challenge.parsed
        assert isinstance(login, models.ChallengeOut)  # a verification, its factor, the others
        assert login.purpose is models.Purpose.LOGIN and login.user_id == user_id
        assert login.factor_id == factors.factors[0].id and login.alternatives == []
        _wait_until_pending(generated, api, login.id)
        code = system.sandbox.latest_code(phone)
        wrong = "000000" if code != "000000" else "111111"
        assert _check(generated, api, login.id, wrong).status is models.CheckStatus.REJECTED
        assert _check(generated, api, login.id, code).status is models.CheckStatus.APPROVED
        over = generated.read_verification.sync(login.id, client=api)
        assert over.status is models.VerificationStatus.APPROVED

        # The error answers are typed too: a check on a decided verification is a Problem.
        refused = generated.create_check.sync_detailed(
            login.id, client=api, body=models.CodeCheckCreate(code=code)
        )
        assert refused.status_code == 409 and isinstance(refused.parsed, models.Problem)
        assert refused.parsed.code == "verification_not_pending"
    report("a generated client's story", generated_in_seconds=round(generated.seconds, 2))


def _wait_until_pending(generated: SimpleNamespace, api: Any, verification_id: uuid.UUID) -> None:
    models = generated.models
    sent = generated.read_verification.sync(verification_id, client=api, wait=30)
    assert isinstance(sent, models.VerificationOut), sent
    assert sent.status is models.VerificationStatus.PENDING, sent


def _check(generated: SimpleNamespace, api: Any, verification_id: uuid.UUID, code: str) -> Any:
    """A check, answered once it is decided (``?wait=``): 200 and the decided check."""
    answer = generated.create_check.sync_detailed(
        verification_id, client=api, body=generated.models.CodeCheckCreate(code=code), wait=30
    )
    assert answer.status_code == 200, answer.content
    assert isinstance(answer.parsed, generated.models.CheckOut)
    return answer.parsed
