"""The reference login site (examples/login_site) without twostep's processes: its forms'
CSRF tokens, its headers, a login that fails closed, and the words it uses for twostep's
refusals. Its whole story, in a browser against the real system, is in tests/browser."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient
from twostep_client import AsyncTwostepClient, MaxAttemptsReached, RateLimited, UserLocked

from examples.login_site import words
from examples.login_site.app import create_app
from examples.login_site.config import SiteConfig

Handler = Callable[[httpx.Request], httpx.Response]


def _site(tmp_path: Path, handler: Handler) -> TestClient:
    config = SiteConfig(
        twostep_url="http://twostep.test",
        twostep_api_key="tsk_test",
        database=tmp_path / "site.db",
        session_secret="a-test-secret",
    )
    twostep = AsyncTwostepClient(
        config.twostep_url, config.twostep_api_key, transport=httpx.MockTransport(handler)
    )
    return TestClient(create_app(config, twostep), follow_redirects=False)


@pytest.fixture
def unreachable(tmp_path: Path) -> Iterator[TestClient]:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("twostep is down", request=request)

    with _site(tmp_path, refuse) as client:
        yield client


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


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
    assert "<script" not in page.text
    assert 'autocomplete="current-password"' in page.text


def test_without_twostep_a_password_alone_does_not_sign_in(unreachable: TestClient) -> None:
    """Nobody can tell whether a second step is due: the login fails closed."""
    form = {"email": "ada@example.com", "password": "correct horse", "csrf_token": ""}
    form["csrf_token"] = _token(unreachable.get("/signup").text)
    assert unreachable.post("/signup", data=form).headers["location"] == "/settings"
    form["csrf_token"] = _token(unreachable.get("/settings").text)
    unreachable.post("/logout", data={"csrf_token": form["csrf_token"]})

    form["csrf_token"] = _token(unreachable.get("/login").text)
    refused = unreachable.post("/login", data=form)
    assert refused.status_code == 503
    assert words.UNAVAILABLE in refused.text.replace("&#39;", "'")
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


def test_a_phone_number_as_people_type_it_goes_to_twostep_as_e164() -> None:
    from examples.login_site.settings_pages import as_e164

    assert as_e164("+1 (415) 555-0123") == "+14155550123"
    assert as_e164("+44 20.7946.0958") == "+442079460958"
    assert as_e164("415 555 0123") == "4155550123"  # no country code: twostep refuses it
