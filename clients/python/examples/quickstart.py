"""Send a code, read it as the user would, check it: against `twostep dev`, from the clone.

    .venv/bin/python clients/python/examples/quickstart.py [PHONE]

TWOSTEP_URL is the API (default http://127.0.0.1:8000), TWOSTEP_API_KEY its key (default: the
one twostep dev keeps in .twostep/dev-api-key), TWOSTEP_SANDBOX_URL the sandbox (default
http://127.0.0.1:8765): the URLs and the key twostep dev printed.
"""

import os
import sys
from pathlib import Path

import httpx
from twostep_client import TwostepClient

URL = os.environ.get("TWOSTEP_URL", "http://127.0.0.1:8000")
API_KEY = os.environ.get("TWOSTEP_API_KEY") or Path(".twostep/dev-api-key").read_text().strip()
SANDBOX_URL = os.environ.get("TWOSTEP_SANDBOX_URL", "http://127.0.0.1:8765")
PHONE = sys.argv[1] if len(sys.argv) > 1 else "+14155550123"


def code_typed_by_the_user(to: str) -> str:
    """Stands in for the user reading the code and typing it: the sandbox's inbox, newest first."""
    messages = httpx.get(f"{SANDBOX_URL}/sandbox/messages", params={"to": to}).json()
    return str(messages[0]["code"])


with TwostepClient(URL, API_KEY) as twostep:
    # Answers once a worker has sent the code (or the 30 s wait runs out): one long-poll.
    verification = twostep.start_verification(to=PHONE, wait=30)
    print("verification", verification.id, verification.status)  # ... pending
    check = twostep.check(verification.id, code_typed_by_the_user(PHONE), wait=10)
    print("check", check.status)  # approved
