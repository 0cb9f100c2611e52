"""Credentials as Twilio checks them: exactly one account's pair, anything else 401 / 20003."""

from __future__ import annotations

import base64

import httpx
import pytest

from sandbox.services import DEFAULT_SERVICE_SID
from tests.sandbox.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    OTHER_ACCOUNT_SID,
    OTHER_AUTH_TOKEN,
    checked,
    schema_errors,
    sdk_client,
    twilio_error,
)
from tests.support import ThreadedServer


class TestAuthentication:
    def test_only_the_default_pair_is_accepted_when_none_is_configured(
        self, sandbox_server: ThreadedServer
    ) -> None:
        assert (ACCOUNT_SID, AUTH_TOKEN) == ("AC" + "0" * 32, "sandbox")  # twostep's adapter's
        good = sdk_client(sandbox_server.url)
        assert good.verify.v2.services(DEFAULT_SERVICE_SID).fetch().account_sid == ACCOUNT_SID
        checked(good)
        for sid, token in ((ACCOUNT_SID, "any-token"), ("AC" + "7" * 32, AUTH_TOKEN)):
            bad = sdk_client(sandbox_server.url, sid, token)
            error = twilio_error(lambda bad=bad: bad.verify.v2.services.create(friendly_name="x"))
            assert (error.status, error.code) == (401, 20003)
            checked(bad)

    def test_a_sandbox_started_with_credentials_requires_exactly_those(
        self, auth_sandbox_server: ThreadedServer
    ) -> None:
        url = auth_sandbox_server.url
        good = sdk_client(url, OTHER_ACCOUNT_SID, OTHER_AUTH_TOKEN)
        default = good.verify.v2.services(DEFAULT_SERVICE_SID).fetch()
        assert default.account_sid == OTHER_ACCOUNT_SID  # the default service is that account's
        checked(good)
        for sid, token in (
            (OTHER_ACCOUNT_SID, "wrong"),
            ("AC" + "6" * 32, OTHER_AUTH_TOKEN),
            (ACCOUNT_SID, AUTH_TOKEN),  # the default pair is replaced, not added to
        ):
            bad = sdk_client(url, sid, token)
            error = twilio_error(
                lambda bad=bad: bad.verify.v2.services(DEFAULT_SERVICE_SID).fetch()
            )
            assert (error.status, error.code) == (401, 20003)
            checked(bad)
        anonymous = httpx.get(f"{url}/v2/Services/{DEFAULT_SERVICE_SID}")
        assert anonymous.status_code == 401 and anonymous.json()["code"] == 20003
        assert anonymous.json()["message"] == "Authenticate"

    @pytest.mark.parametrize(
        "authorization",
        [
            None,
            "Bearer AC" + "0" * 32,
            "Token abc",
            "Basic",
            "Basic !!not-base64!!",
            "Basic " + base64.b64encode(b":sandbox").decode(),
            "Basic " + base64.b64encode(("AC" + "0" * 32).encode()).decode(),
        ],
    )
    def test_a_request_without_the_credentials_is_401_authenticate(
        self, sandbox_server: ThreadedServer, authorization: str | None
    ) -> None:
        headers = {"Authorization": authorization} if authorization else {}
        for method, path, form in (
            ("GET", f"/v2/Services/{DEFAULT_SERVICE_SID}", None),
            ("POST", f"/v2/Services/{DEFAULT_SERVICE_SID}/Verifications", {"To": "+14155550123"}),
            ("GET", "/v2/Attempts", None),
            ("GET", "/v2/PhoneNumbers/+14155550123", None),
        ):
            answer = httpx.request(method, sandbox_server.url + path, headers=headers, data=form)
            assert answer.status_code == 401, (authorization, answer.text)
            assert answer.headers["www-authenticate"].startswith("Basic")
            body = answer.json()
            assert (body["code"], body["message"], body["status"]) == (20003, "Authenticate", 401)
            assert schema_errors("twilio.error", body) == []
