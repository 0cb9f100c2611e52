"""Twilio's Node SDK against the sandbox, as a login server in JavaScript would point it there:
a broken setup fails locally as it would against Twilio (wrong credentials, a service that
does not exist, a custom code the service does not allow, a sixth send to a number within ten
minutes), and the Services, Attempts and Lookup answers read as the SDK expects."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import ThreadedServer

HERE = Path(__file__).resolve().parent / "node_sdk"


@pytest.fixture(scope="module")
def node_sdk() -> Path:
    """The SDK, installed from npm's registry into the check's own folder (once per machine)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the Node SDK check: node and npm are not installed")
        pytest.skip("node and npm are not installed")
    if not (HERE / "node_modules" / "twilio").exists():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--no-save", "--silent"],
            cwd=HERE,
            check=True,
            timeout=300,
        )
    return HERE


def test_the_node_sdk_meets_twilios_answers(node_sdk: Path, sandbox_server: ThreadedServer) -> None:
    finished = subprocess.run(
        ["node", str(node_sdk / "check.js"), sandbox_server.url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    seen = json.loads(finished.stdout)
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
