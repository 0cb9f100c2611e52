"""Acceptance, over HTTP, with every process started the way ops start them."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import MetaData, create_engine, select

from sandbox.app import DEFAULT_ACCOUNT_SID
from tests.e2e.conftest import System
from tests.support import random_phone, wait_until


def test_the_verification_flow_and_its_errors(system: System, http: httpx.Client) -> None:
    auth = {"Authorization": f"Bearer {system.api_key}"}
    api = system.api_url
    sandbox = system.sandbox
    to = random_phone()
    statuses: list[int] = []

    def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = http.request(method, f"{api}{path}", **kwargs)
        statuses.append(response.status_code)
        return response

    created = call("POST", "/v1/verifications", json={"to": to}, headers=auth)
    assert created.status_code == 202 and created.json()["status"] == "queued"
    verification_id = created.json()["id"]
    started = time.monotonic()
    wait_until(
        lambda: (
            call("GET", f"/v1/verifications/{verification_id}", headers=auth).json()["status"]
            == "pending"
        ),
        timeout=2,
        interval=0.05,
        what="pending within 2 s",
    )
    print(f"queued → pending in {time.monotonic() - started:.3f}s")  # noqa: T201 - a measured figure
    code = sandbox.latest_code(to)
    # Random, so that finding it in a log is no coincidence (the dev service's SID is VA000…).
    wrong = next(c for c in (f"{secrets.randbelow(10**6):06d}" for _ in range(9)) if c != code)

    def checked(code_typed: str) -> str:
        response = call(
            "POST",
            f"/v1/verifications/{verification_id}/checks",
            json={"code": code_typed},
            headers={**auth, "Idempotency-Key": f"check-{uuid.uuid4()}"},
        )
        assert response.status_code == 202
        check_path = f"/v1/verifications/{verification_id}/checks/{response.json()['id']}"
        done = wait_until(
            lambda: (
                (body := call("GET", check_path, headers=auth).json())["status"] != "queued"
                and body
            ),
            timeout=5,
            what="the check to finish",
        )
        return str(done["status"])

    assert checked(wrong) == "rejected"
    assert checked(code) == "approved"
    assert (
        call("GET", f"/v1/verifications/{verification_id}", headers=auth).json()["status"]
        == "approved"
    )

    again = call(
        "POST", f"/v1/verifications/{verification_id}/checks", json={"code": code}, headers=auth
    )
    assert again.status_code == 409 and again.json()["code"] == "verification_not_pending"
    bad = call("POST", "/v1/verifications", json={"to": "12"}, headers=auth)
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_phone_number"
    assert call("POST", "/v1/verifications", json={"to": to}).status_code == 401
    assert (
        call(
            "GET", f"/v1/verifications/{verification_id}", headers={"Authorization": "Bearer tsk_x"}
        ).status_code
        == 401
    )
    unknown = call("GET", "/v1/verifications/00000000-0000-4000-8000-000000000000", headers=auth)
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    assert 500 not in statuses and all(status < 500 for status in statuses)
    assert sandbox.sends_to(to) == 1

    # Neither code, nor the full number, anywhere in the logs of any process.
    logs = system.logs()
    assert "send.pending" in logs, "the worker logged nothing: the grep below would prove nothing"
    for secret in (code, wrong, to):
        assert secret not in logs, f"{secret!r} leaked into the logs"
    assert not re.search(r"\+1\d{10}", logs), "a full phone number leaked into the logs"

    # And no column holds a code.
    engine = create_engine(
        system.env["TWOSTEP_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://")
    )
    try:
        with engine.connect() as connection:
            metadata = MetaData()
            metadata.reflect(bind=connection)
            cells = [
                str(value)
                for table in metadata.sorted_tables
                for row in connection.execute(select(table))
                for value in row
            ]
    finally:
        engine.dispose()
    assert cells, "the database is empty: the scan would prove nothing"
    assert not [cell for cell in cells if code in cell or wrong in cell]


def test_the_keys_commands(system: System) -> None:
    url = f"{system.api_url}/v1/verifications/00000000-0000-4000-8000-000000000000"
    headers = {"Authorization": f"Bearer {system.api_key}"}
    assert httpx.get(url, headers=headers).status_code == 404

    listing = system.run("keys", "list")
    ours = next(line for line in listing.splitlines() if line.startswith(system.api_key_name))
    assert ours.endswith("active") and system.api_key not in listing
    assert system.api_key[:12] in ours  # the prefix, to tell keys apart
    assert f"revoked API key {system.api_key_name!r}" in system.run(
        "keys", "revoke", system.api_key_name
    )
    revoked_at = time.monotonic()
    # The API remembers a key for TWOSTEP_API_KEY_CACHE_SECONDS (5 s by default), no longer.
    wait_until(
        lambda: httpx.get(url, headers=headers).status_code == 401,
        timeout=10,
        interval=0.2,
        what="the revoked key to be refused",
    )
    assert time.monotonic() - revoked_at <= 5 + 1
    assert "revoked" in system.run("keys", "list")


def test_a_tenants_passkeys_are_set_on_its_own_verify_service(system: System) -> None:
    """``twostep tenants passkeys``: the relying party checked, set on the tenant's own Verify
    service at the sandbox (a challenge needs it there), then shown; a bad one changes nothing."""
    name = f"acme-{uuid.uuid4().hex[:8]}"
    created = system.run("tenants", "create", name, "--display-name", "Acme")
    assert "passkeys: off" in created
    service = re.search(r"service (VA[0-9a-f]{32})", created)
    assert service is not None, created
    shown = system.run(
        "tenants", "passkeys", name, "--rp-id", "example.com",
        "--origin", "https://login.example.com",
    )  # fmt: skip
    assert "passkeys: example.com (https://login.example.com)" in shown
    at_twilio = httpx.get(
        f"{system.sandbox_url}/v2/Services/{service[1]}", auth=(DEFAULT_ACCOUNT_SID, "sandbox")
    ).json()["passkeys"]
    assert at_twilio["relying_party"] == {
        "id": "example.com",
        "name": "Acme",
        "origins": ["https://login.example.com"],
    }
    assert at_twilio["user_verification"] == "required"

    refused = system.run_failing(
        "tenants", "passkeys", name, "--rp-id", "example.com",
        "--origin", "https://example.com.evil.test",
    )  # fmt: skip
    assert "is not on example.com" in refused
    assert "passkeys: example.com (https://login.example.com)" in system.run(
        "tenants", "show", name
    )
