"""Two-step for a user: enrol their phone, then challenge them at login. Against `twostep dev`,
from the clone, with the environment of quickstart.py:

    .venv/bin/python clients/python/examples/two_step.py [USER_ID] [PHONE]
"""

import os
import sys
from pathlib import Path

import httpx
from twostep_client import TwostepClient

URL = os.environ.get("TWOSTEP_URL", "http://127.0.0.1:8000")
API_KEY = os.environ.get("TWOSTEP_API_KEY") or Path(".twostep/dev-api-key").read_text().strip()
SANDBOX_URL = os.environ.get("TWOSTEP_SANDBOX_URL", "http://127.0.0.1:8765")
USER_ID = sys.argv[1] if len(sys.argv) > 1 else "42"
PHONE = sys.argv[2] if len(sys.argv) > 2 else "+14155550124"


def code_typed_by_the_user(to: str) -> str:
    """Stands in for the user reading the code and typing it: the sandbox's inbox, newest first."""
    messages = httpx.get(f"{SANDBOX_URL}/sandbox/messages", params={"to": to}).json()
    return str(messages[0]["code"])


with TwostepClient(URL, API_KEY) as twostep:
    # Enrolment: the phone is stored unverified and sent a code; its approval turns two-step on.
    enrollment = twostep.enroll_factor(USER_ID, PHONE)
    twostep.wait_for_verification(enrollment.verification.id)
    check = twostep.check(enrollment.verification.id, code_typed_by_the_user(PHONE))
    if not check.approved:
        sys.exit(f"the code was not accepted: {check.status}")
    # An approved code verifies the phone, unless it is verified for another of your users: the
    # factor is then disabled, its disabled_reason "in_use" (the user is told only this much).
    factor = next(f for f in twostep.list_factors(USER_ID).factors if f.id == enrollment.factor.id)
    if factor.status != "verified":
        sys.exit(f"two-step is still off for {USER_ID}: this phone cannot be used")
    print("two-step on for", USER_ID)

    # Login, once the password was right: a code to this phone (else the user's preferred factor).
    challenge = twostep.start_challenge(USER_ID, factor_id=factor.id)
    twostep.wait_for_verification(challenge.id)
    check = twostep.check(challenge.id, code_typed_by_the_user(PHONE))
    print("login", check.status)  # approved
