"""The reference login site (examples/login_site) without twostep's processes: its sessions,
its password throttle, "confirm it's you", the security notices it takes from webhooks, its
forms' CSRF tokens, its headers, a login that fails closed, and the words it uses for twostep's
refusals. Its whole story, in a browser against the real system, is in tests/browser."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from starlette.testclient import TestClient
from twostep_client import (
    AsyncTwostepClient,
    Event,
    MaxAttemptsReached,
    RateLimited,
    UserLocked,
)

from examples.login_site import words
from examples.login_site.app import create_app
from examples.login_site.config import SiteConfig
from examples.login_site.sessions import PLAIN_COOKIE, SECURE_COOKIE, SessionStore
from examples.login_site.store import Users
from examples.login_site.throttle import Throttle, network

PASSWORD = "correct horse battery"
SECRET = "whsec_test"
CODE = "123456"
RECOVERY_CODE = "7K2P-QM9X-D4RT"


class FakeTwostep:
    """twostep's API as far as the site calls it: every code sent is CODE, every recovery code
    RECOVERY_CODE."""

    def __init__(self) -> None:
        self.verified: set[str] = set()  # users with two-step on
        self.with_email: set[str] = set()  # of those, users with an email address too
        self.locked: set[str] = set()  # users whose challenges are refused (a lockout)
        self.challenges: list[str] = []
        self.ids = itertools.count(1)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        method, path = request.method, request.url.path
        if found := re.fullmatch(r"/v1/users/(\w+)/factors", path):
            return self._factors(found[1])
        if found := re.fullmatch(r"/v1/users/(\w+)/factors/\w+", path):
            self.verified.discard(found[1])
            return httpx.Response(204)
        if found := re.fullmatch(r"/v1/users/(\w+)/challenges", path):
            self.challenges.append(found[1])
            if found[1] in self.locked:
                problem = {"code": "user_locked", "detail": "locked", "limit": "user_lockout"}
                return httpx.Response(429, json=problem, headers={"Retry-After": "60"})
            challenge = {"factor_id": "f1", "alternatives": []}
            return httpx.Response(202, json=self._verification(f"v{next(self.ids)}") | challenge)
        if found := re.fullmatch(r"/v1/verifications/(\w+)", path):
            return httpx.Response(200, json=self._verification(found[1]))
        if found := re.fullmatch(r"/v1/verifications/(\w+)/checks", path):
            right = json.loads(request.content)["code"] == CODE
            check = {"id": "c", "verification_id": found[1], "created_at": _now()}
            return httpx.Response(
                202, json={**check, "status": "approved" if right else "rejected"}
            )
        if path.endswith("/recovery-codes/redeem"):
            right = json.loads(request.content)["code"] == RECOVERY_CODE
            return httpx.Response(200, json={"status": "approved" if right else "rejected"})
        if path.endswith("/events"):
            return httpx.Response(200, json={"events": [], "next_before": None})
        if path.endswith("/recovery-codes") and method == "POST":
            return httpx.Response(201, json={"codes": [RECOVERY_CODE] * 10})
        return httpx.Response(404, json={"code": "not_found", "detail": path})

    def _factors(self, user_id: str) -> httpx.Response:
        on = user_id in self.verified
        factor: dict[str, Any] = {
            "id": "f1", "user_id": user_id, "phone": "+1415•••••23", "channel": "sms"
        }  # fmt: skip
        factor |= {"status": "verified", "created_at": _now(), "verified_at": _now()}
        factors = [factor] if on else []
        if on and user_id in self.with_email:
            email = {"id": "f2", "type": "email", "phone": None, "email": "a•••@example.com"}
            factors.append(factor | email | {"channel": "email"})
        body = {"user_id": user_id, "two_step_enabled": on, "factors": factors}
        return httpx.Response(200, json=body)

    def _verification(self, verification_id: str) -> dict[str, Any]:
        return {
            "id": verification_id, "status": "pending", "channel": "sms", "to": "+1415•••••23",
            "purpose": "login", "send_attempts": 1, "check_attempts": 0,
            "created_at": _now(), "updated_at": _now(),
        }  # fmt: skip


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _config(tmp_path: Path, **changes: Any) -> SiteConfig:
    config = SiteConfig(
        twostep_url="http://twostep.test",
        twostep_api_key="tsk_test",
        database=tmp_path / "site.db",
        webhook_secrets=(SECRET,),
    )
    return dataclasses.replace(config, **changes)


def _client(config: SiteConfig, handler: Any) -> TestClient:
    transport = httpx.MockTransport(handler)
    twostep = AsyncTwostepClient(config.twostep_url, config.twostep_api_key, transport=transport)
    return TestClient(create_app(config, twostep), follow_redirects=False)


@pytest.fixture
def twostep() -> FakeTwostep:
    return FakeTwostep()


@pytest.fixture
def site(tmp_path: Path, twostep: FakeTwostep) -> Iterator[TestClient]:
    with _client(_config(tmp_path), twostep) as client:
        yield client


@pytest.fixture
def unreachable(tmp_path: Path) -> Iterator[TestClient]:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("twostep is down", request=request)

    with _client(_config(tmp_path), refuse) as client:
        yield client


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def _post(client: TestClient, page: str, path: str, **fields: str) -> httpx2.Response:
    """``path``'s form, sent as a person would: with the token from ``page``."""
    return client.post(path, data={**fields, "csrf_token": _token(client.get(page).text)})


def _sign_up(client: TestClient, email: str = "ada@example.com") -> str:
    answer = _post(client, "/signup", "/signup", email=email, password=PASSWORD)
    assert answer.headers["location"] == "/settings", answer.text
    return str(client.cookies[PLAIN_COOKIE])


def _user_id(tmp_path: Path, email: str = "ada@example.com") -> str:
    with sqlite3.connect(tmp_path / "site.db") as db:
        return str(db.execute("SELECT id FROM users WHERE email = ?", (email,)).fetchone()[0])


def _age_session(tmp_path: Path, **stamps: float) -> None:
    """The one session, as if its proofs had been given ``stamps`` ago."""
    with sqlite3.connect(tmp_path / "site.db") as db:
        data = json.loads(db.execute("SELECT data FROM sessions").fetchone()[0])
        db.execute("UPDATE sessions SET data = ?", (json.dumps({**data, **stamps}),))


def _text(answer: httpx2.Response) -> str:
    return answer.text.replace("&#39;", "'").replace("&amp;", "&")


# --- sessions


def test_the_cookie_holds_a_random_id_and_the_database_only_its_hash(
    site: TestClient, tmp_path: Path
) -> None:
    anonymous = site.get("/login").cookies[PLAIN_COOKIE]
    signed_in = _sign_up(site)
    assert signed_in != anonymous and len(signed_in) == 43  # a new id for a new person
    with sqlite3.connect(tmp_path / "site.db") as db:
        rows = db.execute("SELECT id_hash, user_id, data FROM sessions").fetchall()
    assert [row[0] for row in rows] == [hashlib.sha256(signed_in.encode()).hexdigest()]
    assert rows[0][1] == _user_id(tmp_path) and signed_in not in rows[0][2]


@pytest.mark.parametrize(
    ("https_only", "name", "secure"), [(False, PLAIN_COOKIE, False), (True, SECURE_COOKIE, True)]
)
def test_the_cookie_is_host_only_http_only_and_lax(
    tmp_path: Path, twostep: FakeTwostep, https_only: bool, name: str, secure: bool
) -> None:
    with _client(_config(tmp_path, https_only=https_only), twostep) as client:
        header = client.get("/login").headers["set-cookie"]
    assert header.startswith(f"{name}=")
    fields = (part.strip().partition("=") for part in header.split(";")[1:])
    attributes = {key.lower(): value.lower() for key, _, value in fields}
    assert attributes["path"] == "/" and attributes["samesite"] == "lax"
    assert "httponly" in attributes and "domain" not in attributes
    assert ("secure" in attributes) is secure


def test_a_copied_cookie_opens_nothing_after_sign_out(site: TestClient) -> None:
    copied = _sign_up(site)
    assert site.get("/settings").status_code == 200
    _post(site, "/settings", "/logout")
    site.cookies.clear()
    site.cookies.set(PLAIN_COOKIE, copied)
    answer = site.get("/settings")
    assert answer.status_code == 303 and answer.headers["location"] == "/login"


def test_a_password_change_ends_every_other_session(
    tmp_path: Path, twostep: FakeTwostep, site: TestClient
) -> None:
    _sign_up(site)
    new, users = "a much longer passphrase", Users(tmp_path / "site.db")
    with _client(_config(tmp_path), twostep) as elsewhere:
        signed_in = _post(elsewhere, "/login", "/login", email="ada@example.com", password=PASSWORD)
        assert signed_in.headers["location"] == "/settings"
        _post(site, "/settings", "/settings/password", current_password="wrong", new_password=new)
        assert "Your current password isn't right" in _text(site.get("/settings"))
        assert elsewhere.get("/settings").status_code == 200
        assert users.authenticate("ada@example.com", new) is None

        before = site.cookies[PLAIN_COOKIE]
        _post(site, "/settings", "/settings/password", current_password=PASSWORD, new_password=new)
        assert "signed out everywhere else" in _text(site.get("/settings"))
        assert site.cookies[PLAIN_COOKIE] != before  # this browser: on, under a new id
        assert elsewhere.get("/settings").headers["location"] == "/login"
    assert users.authenticate("ada@example.com", new) is not None


def test_sessions_end_when_idle_and_at_the_absolute_limit(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = SessionStore(
        tmp_path / "s.db", idle_seconds=60, absolute_seconds=300, clock=lambda: now[0]
    )
    session = store.create({"user": "u1"})
    for _ in range(5):  # active every 59 s: the idle limit never ends it
        now[0] += 59
        assert store.load(session).data == {"user": "u1"}
        assert store.save(session, {"user": "u1"})
    now[0] += 6  # 301 s after it began
    assert store.load(session).ended == "absolute"
    idle = store.create({"user": "u1"})
    now[0] += 61
    assert store.load(idle).ended == "idle"
    assert store.load(idle).data is None and store.load(idle).ended is None  # deleted
    assert store.load("not-a-session-id").data is None


def test_an_ended_session_is_not_brought_back_by_a_request_already_running(
    tmp_path: Path,
) -> None:
    store = SessionStore(tmp_path / "s.db", idle_seconds=60, absolute_seconds=300)
    mine, theirs, other = (store.create({"user": user}) for user in ("u1", "u1", "u2"))
    assert store.delete_user("u1") == 2
    assert not store.save(theirs, {"user": "u1", "csrf": "x"})  # loaded before the change
    assert store.load(theirs).data is None and store.load(mine).data is None
    assert store.load(other).data == {"user": "u2"}


def test_an_idle_session_signs_out_with_a_reason(tmp_path: Path, twostep: FakeTwostep) -> None:
    with _client(_config(tmp_path, idle_seconds=60), twostep) as client:
        _sign_up(client)
        with sqlite3.connect(tmp_path / "site.db") as db:
            db.execute("UPDATE sessions SET last_seen = last_seen - 61")
        assert client.get("/settings").headers["location"] == "/login"
        assert "You were signed out after 60 seconds without activity." in _text(
            client.get("/login")
        )


# --- the password throttle


def test_the_sixth_wrong_password_is_refused_unread_account_or_not(
    site: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sign_up(site)
    _post(site, "/settings", "/logout")
    hashed: list[str] = []
    authenticate = Users.authenticate

    def counted(users: Users, email: str, password: str) -> object:
        hashed.append(email)
        return authenticate(users, email, password)

    monkeypatch.setattr(Users, "authenticate", counted)
    answers: dict[str, tuple[int, str]] = {}
    for email in ("ada@example.com", "nobody@example.com"):
        for _ in range(5):
            wrong = _post(site, "/login", "/login", email=email, password="wrong password")
            assert wrong.status_code == 401
        sixth = _post(site, "/login", "/login", email=email, password=PASSWORD)
        alert = re.search(r'role="alert">([^<]*)<', _text(sixth))
        answers[email] = (sixth.status_code, alert[1] if alert else "")
    assert hashed == ["ada@example.com"] * 5 + ["nobody@example.com"] * 5
    said = "Too many attempts with a wrong password. Please try again in 15 minutes."
    assert answers == {"ada@example.com": (429, said), "nobody@example.com": (429, said)}


def test_passwords_being_checked_count_and_right_ones_do_not() -> None:
    throttle = Throttle(per_email="2 per minute", per_ip="100 per hour", signups_per_ip="1/hour")
    with throttle.password_attempt("a@x", "203.0.113.9") as right:
        right.right = True
    with (
        throttle.password_attempt("a@x", "203.0.113.9") as first,
        throttle.password_attempt("a@x", "203.0.113.9") as second,
    ):
        assert first.wait is None and second.wait is None  # the right one was not counted
        with throttle.password_attempt("a@x", "203.0.113.9") as third:
            assert third.wait is not None and 1 <= third.wait <= 60  # two being hashed
    with throttle.password_attempt("b@x", "203.0.113.9") as other:
        assert other.wait is None
    assert throttle.signup_wait("203.0.113.9") is None
    assert throttle.signup_wait("203.0.113.9") is not None
    assert throttle.signup_wait("203.0.113.10") is None


def test_a_client_is_its_address_or_its_ipv6_64() -> None:
    assert network("2001:db8:1:2:3:4:5:6") == network("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert network("::ffff:203.0.113.9") == "203.0.113.9"
    assert network(None) == network("not an address") == "unknown"


def test_sign_ups_are_limited_per_address(tmp_path: Path, twostep: FakeTwostep) -> None:
    with _client(_config(tmp_path, signups_per_ip="2 per hour"), twostep) as client:
        for n in range(2):
            _sign_up(client, f"user{n}@example.com")
        third = _post(client, "/signup", "/signup", email="u3@example.com", password=PASSWORD)
    assert third.status_code == 429 and "Too many new accounts" in _text(third)


# --- confirm it's you


def test_turning_two_step_off_without_a_recent_second_step_asks_for_a_code(
    tmp_path: Path, twostep: FakeTwostep
) -> None:
    with _client(_config(tmp_path), twostep) as client:
        _sign_up(client)
        user = _user_id(tmp_path)
        twostep.verified.add(user)  # on since: this session never passed a second step
        off = _post(client, "/settings", "/settings/two-step/off", password=PASSWORD)
        assert off.headers["location"] == "/confirm" and twostep.challenges == [user]
        assert user in twostep.verified  # nothing changed yet
        page = _text(client.get("/confirm"))
        assert "To turn off two-step verification, enter the code" in page
        wrong = _post(client, "/confirm", "/confirm", code="000000")
        assert wrong.headers["location"] == "/confirm"
        assert "That code isn't right" in _text(client.get("/confirm"))
        done = _post(client, "/confirm", "/confirm", code=CODE)
        assert done.headers["location"] == "/settings" and user not in twostep.verified
        assert "Two-step verification is off." in _text(client.get("/settings"))


def test_a_refused_first_challenge_still_offers_the_users_other_factors(
    tmp_path: Path, twostep: FakeTwostep
) -> None:
    with _client(_config(tmp_path), twostep) as client:
        _sign_up(client)
        _post(client, "/settings", "/logout")
        user = _user_id(tmp_path)
        twostep.verified.add(user)
        twostep.with_email.add(user)
        twostep.locked.add(user)
        signed_in = _post(client, "/login", "/login", email="ada@example.com", password=PASSWORD)
        assert signed_in.headers["location"] == "/login/code" and twostep.challenges == [user]
        page = _text(client.get("/login/code"))
        assert "you can try again in 60 seconds" in page  # the refusal, said
        assert "Email me instead" in page  # and the way round it, learned from the factors


def test_a_recovery_code_confirms_too(tmp_path: Path, twostep: FakeTwostep) -> None:
    """A user who lost the phone can still change it."""
    with _client(_config(tmp_path), twostep) as client:
        _sign_up(client)
        twostep.verified.add(_user_id(tmp_path))
        assert client.get("/settings/two-step").headers["location"] == "/confirm"
        assert twostep.challenges == []  # a link followed sends nothing
        wrong = _post(client, "/confirm", "/confirm/recovery", code="AAAA-BBBB-CCCC")
        assert wrong.headers["location"] == "/confirm"
        right = _post(client, "/confirm", "/confirm/recovery", code=RECOVERY_CODE)
        assert right.headers["location"] == "/settings/two-step"
        assert "<h1>Change your phone</h1>" in client.get("/settings/two-step").text


def test_without_two_step_a_new_phone_asks_for_the_password_again(
    tmp_path: Path, twostep: FakeTwostep
) -> None:
    with _client(_config(tmp_path), twostep) as client:
        _sign_up(client)
        _age_session(tmp_path, password_at=time.time() - 301)
        assert client.get("/settings/two-step").headers["location"] == "/confirm"
        assert "To turn on two-step verification, type your password again." in _text(
            client.get("/confirm")
        )
        wrong = _post(client, "/confirm", "/confirm/password", password="not it at all")
        assert wrong.headers["location"] == "/confirm" and twostep.challenges == []
        right = _post(client, "/confirm", "/confirm/password", password=PASSWORD)
        assert right.headers["location"] == "/settings/two-step"
        assert "Mobile phone number" in client.get("/settings/two-step").text


# --- security notices from twostep's webhooks


def _delivery(
    client: TestClient, kind: str, data: dict[str, Any], *, event_id: str = "e1", **how: Any
) -> httpx2.Response:
    """An event POSTed as twostep posts it, signed with ``how["secret"]`` (else SECRET) at
    ``how["at"]`` (else now)."""
    body = json.dumps({"id": event_id, "type": kind, "created_at": _now(), "data": data}).encode()
    stamp = str(int(how.get("at", time.time())))
    key = str(how.get("secret", SECRET)).encode()
    signature = hmac.new(key, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {"Twostep-Signature": f"t={stamp},v1={signature}", "Twostep-Event-Id": event_id}
    return client.post("/twostep/webhooks", content=body, headers=headers)


def test_a_notice_is_kept_once_shown_at_the_next_sign_in_and_listed(
    site: TestClient, tmp_path: Path
) -> None:
    _sign_up(site)
    user = _user_id(tmp_path)
    factor = {"id": "f1", "user_id": user, "phone": "+1415•••••23", "channel": "sms",
              "status": "verified", "created_at": _now(), "verified_at": _now()}  # fmt: skip
    for _ in range(2):  # delivered twice: kept once
        answer = _delivery(site, "factor.added", factor)
        assert answer.status_code == 204 and "set-cookie" not in answer.headers
    _delivery(site, "user.locked", {"user_id": user, "hard": True}, event_id="e2")
    _post(site, "/settings", "/logout")

    _post(site, "/login", "/login", email="ada@example.com", password=PASSWORD)
    banner = _text(site.get("/settings"))
    assert re.search(r"A new phone \(\+1415•••••23\) was added to your account on "
                     r"\d{4}-\d\d-\d\d \d\d:\d\d UTC\. Not you\?", banner)  # fmt: skip
    assert banner.count("was added to your account") == 2  # the banner, and the list
    assert "locked after too many wrong codes, until support unlocks it" in banner
    again = _text(site.get("/settings"))
    assert again.count("was added to your account") == 1  # the list only: the banner was once


@pytest.mark.parametrize(
    ("how", "status"),
    [({"secret": "whsec_someone_else"}, 401), ({"at": time.time() - 301}, 401), ({}, 204)],
)
def test_only_recent_deliveries_signed_with_the_secret_are_taken(
    site: TestClient, tmp_path: Path, how: dict[str, Any], status: int
) -> None:
    _sign_up(site)
    user = _user_id(tmp_path)
    assert (
        _delivery(site, "recovery_code.used", {"user_id": user, "left": 9}, **how).status_code
        == status
    )
    kept = "A recovery code was used to sign in (9 left)" in _text(site.get("/settings"))
    assert kept is (status == 204)


def test_other_events_and_unknown_users_are_answered_and_dropped(
    site: TestClient, tmp_path: Path
) -> None:
    _sign_up(site)
    user = _user_id(tmp_path)
    assert _delivery(site, "verification.approved", {"user_id": user}).status_code == 204
    assert (
        _delivery(site, "user.unlocked", {"user_id": "someone"}, event_id="e2").status_code == 204
    )
    assert site.post("/twostep/webhooks", content=b"x" * 70_000).status_code == 413
    with sqlite3.connect(tmp_path / "site.db") as db:
        assert db.execute("SELECT COUNT(*) FROM notices").fetchone()[0] == 0


def test_without_a_secret_the_receiver_is_off(tmp_path: Path, twostep: FakeTwostep) -> None:
    with _client(_config(tmp_path, webhook_secrets=()), twostep) as client:
        assert _delivery(client, "user.unlocked", {"user_id": "u"}).status_code == 404


@pytest.mark.parametrize(
    ("kind", "data", "said"),
    [
        ("factor.removed", {"phone": "+1415•••••23"}, "A phone (+1415•••••23) was removed"),
        (
            "factor.added",
            {"type": "passkey", "label": "Ada's laptop"},
            "A new passkey (“Ada's laptop”) was added",
        ),
        ("factor.removed", {"type": "totp"}, "An authenticator app was removed"),
        ("recovery_codes.generated", {"count": 10}, "New recovery codes were made"),
        ("user.locked", {"seconds": 300}, "locked for 5 minutes after too many wrong codes"),
        ("user.unlocked", {}, "Your account was unlocked"),
    ],
)
def test_notices_say_what_happened(kind: str, data: dict[str, Any], said: str) -> None:
    assert said in words.notice(kind, data)


# --- forms, headers, failing closed, words


def test_a_form_without_the_session_token_is_refused(unreachable: TestClient) -> None:
    _token(unreachable.get("/signup").text)
    forged = unreachable.post(
        "/signup", data={"email": "ada@example.com", "password": "x" * 12, "csrf_token": "forged"}
    )
    assert forged.status_code == 403
    assert "This form has expired" in forged.text


def test_pages_are_never_cached_framed_or_scripted(unreachable: TestClient) -> None:
    page = unreachable.get("/login")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    # The passkey buttons' script, the site's own file, and no other: never inline.
    assert "script-src 'self';" in policy and "unsafe" not in policy
    assert "<script" not in page.text
    assert 'autocomplete="current-password"' in page.text


def test_without_twostep_a_password_alone_does_not_sign_in(unreachable: TestClient) -> None:
    """Nobody can tell whether a second step is due: the login fails closed."""
    _sign_up(unreachable)
    _post(unreachable, "/settings", "/logout")
    refused = _post(unreachable, "/login", "/login", email="ada@example.com", password=PASSWORD)
    assert refused.status_code == 503
    assert words.UNAVAILABLE in _text(refused)
    assert unreachable.get("/settings").headers["location"] == "/login"


def _refusal(kind: type[RateLimited], **body: str) -> RateLimited:
    response = httpx.Response(429, headers={"Retry-After": "27"})
    return kind(response, {"code": kind.code, **body})


def test_refusals_say_what_to_do_and_how_long_to_wait() -> None:
    new_code = "Ask for a new one."
    cooldown = _refusal(RateLimited, limit="resend_cooldown")
    assert words.refusal(cooldown, new_code=new_code) == (
        "You can ask for another code in 27 seconds."
    )
    used_up = words.refusal(_refusal(MaxAttemptsReached), new_code=new_code)
    assert used_up == "Too many tries for this code. Ask for a new one."
    locked = words.refusal(_refusal(UserLocked, limit="user_lockout"), new_code=new_code)
    assert locked.endswith("you can try again in 27 seconds.")
    hard = _refusal(UserLocked, detail="locked until an administrator releases the lockout")
    assert "contact support" in words.refusal(hard, new_code=new_code)


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(0.2, "1 second"), (1, "1 second"), (27, "27 seconds"), (90, "90 seconds"),
     (91, "2 minutes"), (900, "15 minutes"), (None, "a few minutes")],
)  # fmt: skip
def test_waits_read_as_people_say_them(seconds: float | None, said: str) -> None:
    assert words.wait(seconds) == said


@pytest.mark.parametrize(
    ("posted", "taken"),
    [
        ("", False),  # the script did not run: JavaScript off
        ("not json", False),
        ('["a list"]', False),
        ('{"id": "x"}', False),  # no response: not a PublicKeyCredential
        ('{"id": "x", "response": {"clientDataJSON": "e30"}}', True),
        ('{"id": "x", "response": {"clientDataJSON": "' + "e" * 70_000 + '"}}', False),
    ],
)
def test_a_posted_passkey_credential_is_taken_only_when_it_looks_like_one(
    posted: str, taken: bool
) -> None:
    from examples.login_site.verifying import credential_of

    assert (credential_of({"credential": posted}) is not None) is taken


def test_a_factors_events_name_it_by_its_type() -> None:
    def factor_event(kind: str, destination: str) -> Event:
        return Event.from_json(
            {"id": 1, "type": kind, "occurred_at": _now(), "destination": destination,
             "factor_id": "f1", "detail": {}}
        )  # fmt: skip

    verified = factor_event("factor.verified", "YF••••12")
    assert words.event(verified) == "Authenticator app added for two-step verification"
    passkey = words.event(verified, {"f1": "passkey"})
    assert passkey == "Passkey added for two-step verification"
    removed = words.event(factor_event("factor.disabled", "YF••••12"), {"f1": "passkey"})
    assert removed == "Passkey removed from two-step verification"
    phone = words.event(factor_event("factor.disabled", "+1415•••••23"))
    assert phone == "Phone removed from two-step verification"


def test_a_phone_number_as_people_type_it_goes_to_twostep_as_e164() -> None:
    from examples.login_site.settings_pages import as_e164

    assert as_e164("+1 (415) 555-0123") == "+14155550123"
    assert as_e164("+44 20.7946.0958") == "+442079460958"
    assert as_e164("415 555 0123") == "4155550123"  # no country code: twostep refuses it


def test_paths_without_a_session_answer_their_status_not_a_crash(unreachable: TestClient) -> None:
    assert unreachable.get("/static/missing.css").status_code == 404
    assert unreachable.get("/twostep/webhooks").status_code == 405
