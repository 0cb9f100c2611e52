"""Twilio's Node SDK against the sandbox, as a login server in JavaScript would point it there:
a broken setup fails locally as it would against Twilio (wrong credentials, a service that
does not exist, a custom code the service does not allow, a sixth send to a number within ten
minutes), and the Services, Attempts and Lookup answers read as the SDK expects. The TOTP
Factors API too: a factor made, verified and challenged with RFC 6238 codes the check computes
itself (node's crypto, cross-checked here with ``pyotp``) on the sandbox's clock, moved ahead,
and Twilio's refusals (an unverified factor, five wrong codes, an unknown factor or type)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from tests.support import SandboxClient, ThreadedServer, node_packages

HERE = Path(__file__).resolve().parent / "node_sdk"


@pytest.fixture(scope="module")
def node_sdk() -> Path:
    """The SDK, installed from npm's registry into the check's own folder (once per machine)."""
    node_packages(HERE, "twilio", "the Node SDK check")
    return HERE


def _check(node_sdk: Path, url: str, which: str) -> dict[str, Any]:
    """What ``check.js`` saw, for its ``verify`` or ``factors`` checks."""
    finished = subprocess.run(
        ["node", str(node_sdk / "check.js"), url, which],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    seen: dict[str, Any] = json.loads(finished.stdout)
    return seen


def _refused(outcome: dict[str, Any]) -> tuple[int, int] | None:
    return None if outcome["ok"] else (outcome["status"], outcome["code"])


def test_the_node_sdk_meets_twilios_answers(node_sdk: Path, sandbox_server: ThreadedServer) -> None:
    seen = _check(node_sdk, sandbox_server.url, "verify")
    assert (seen["wrongToken"]["status"], seen["wrongToken"]["code"]) == (401, 20003)
    assert (seen["unknownService"]["status"], seen["unknownService"]["code"]) == (404, 20404)
    assert (seen["landlineSms"]["status"], seen["landlineSms"]["code"]) == (403, 60205)
    assert seen["landlineCall"] == {"ok": True, "status": "pending"}, "a call to a landline goes"
    assert (seen["customCodeOff"]["status"], seen["customCodeOff"]["code"]) == (403, 60204)
    assert seen["service"]["friendlyName"] == "Node check" and seen["service"]["customCodeEnabled"]
    assert seen["customCodeOn"] == "approved"
    assert seen["attempts"] and set(seen["attempts"]) == {"converted"}
    assert seen["sendsToOneNumber"] == [201] * 5 + [60203], "cancels do not reset Twilio's count"
    assert seen["lookup"] == {"lineType": "nonFixedVoip", "swapped": False}


# Ahead by a part of a step too: codes made on this machine's clock would be refused.
_AHEAD = 7 * 3600 + 13.5


def test_the_node_sdk_meets_twilios_totp_factors(
    node_sdk: Path, own_sandbox: ThreadedServer
) -> None:
    with SandboxClient(own_sandbox.url) as sandbox:
        sandbox.advance_clock(_AHEAD)
    seen = _check(node_sdk, own_sandbox.url, "factors")

    created = seen["created"]
    assert created["sid"].startswith("YF") and created["entitySid"].startswith("YE")
    assert created["identity"].startswith("user-")
    assert (created["status"], created["factorType"]) == ("unverified", "totp")
    assert created["config"] == {"alg": "sha1", "skew": 1, "code_length": 6, "time_step": 30}
    secret, uri = created["binding"]["secret"], created["binding"]["uri"]
    query = parse_qs(urlsplit(uri).query)
    assert uri.startswith("otpauth://totp/") and query["secret"] == [secret]
    assert (query["digits"], query["period"]) == (["6"], ["30"])
    assert seen["fetched"] == {"status": "unverified", "binding": None}, "the secret is shown once"

    # The check's codes are RFC 6238's, made on the sandbox's clock (learned, not assumed).
    assert seen["clockOffset"] == _AHEAD
    codes, totp = seen["codes"], pyotp.TOTP(secret)
    assert 0 <= time.time() + _AHEAD - codes["at"] < 120
    assert codes["right"] == totp.at(codes["at"])
    assert not totp.verify(codes["wrong"], for_time=codes["at"], valid_window=2)

    assert _refused(seen["challengeUnverified"]) == (403, 60318)
    assert (seen["verifyWrong"], seen["verifyRight"]) == ("unverified", "verified")
    assert seen["fetchedVerified"] == "verified"
    challenge = seen["challengeWrong"]
    assert (challenge["status"], challenge["factorSid"]) == ("pending", created["sid"])
    assert seen["challengeRight"] == {"status": "approved", "factorSid": created["sid"]}
    assert seen["challengeFetched"] == {"sid": challenge["sid"], "status": "approved"}
    assert seen["challengeRightAtOnce"] == "approved", "Twilio approves a code used before"

    used_up = seen["challengeUsedUp"]
    assert (used_up["first"], used_up["wrongAnswers"]) == ("pending", ["pending"] * 5)
    assert _refused(used_up["sixth"]) == (429, 60308), "even the right code, after five wrong"
    assert seen["factorUsedUp"]["wrongTries"] == ["unverified"] * 5
    assert _refused(seen["factorUsedUp"]["sixth"]) == (429, 60310)

    assert _refused(seen["unknownFactor"]) == (404, 20404)
    assert _refused(seen["otherEntitysFactor"]) == (404, 20404)
    assert _refused(seen["badFactorType"]) == (400, 60200)
    assert seen["removed"] is True
    assert _refused(seen["fetchRemoved"]) == (404, 20404)
