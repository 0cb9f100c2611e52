"""The reference login site's whole story in a browser, against twostep's real processes: sign
up, a typo'd phone that cannot turn anything on, enrolment and recovery codes, sign-ins with a
wrong code, a call and a re-send asked for too early, a lockout, recovery codes (once), an
expired code, two-step turned off, a security notice from a webhook, a copied cookie refused
after sign-out, a password change that signs another browser out, and the sixth wrong password
refused; then, on a site with a short idle limit, a change that asks for a code first and a
session that ends when left alone — asserting on what each page says."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import RESEND_COOLDOWN_SECONDS, LoginSite, running_login_site
from tests.e2e.conftest import System
from tests.support import early_in_a_totp_step, random_phone, wait_until

LANDLINE = "+14155550201"  # the sandbox answers it as Twilio answers a landline
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a longer and newer passphrase"
COOKIE = "login_site_session"  # in development: plain http, so no __Host- prefix
IDLE_SECONDS = 8


@dataclass
class Visitor:
    """One person at the site: a browser page, and a screenshot of every step."""

    page: Page
    site: str
    artifacts: Path
    phone: str
    shots: list[Path] = field(default_factory=list)

    def beside(self, page: Page) -> Visitor:
        """The same person in another browser: its screenshots go on in the same series."""
        return Visitor(page, self.site, self.artifacts, self.phone, self.shots)

    def go(self, path: str) -> None:
        self.page.goto(self.site + path)

    def says(self, text: str | re.Pattern[str]) -> None:
        expect(self.page.locator("main")).to_contain_text(text)

    def shot(self, name: str) -> None:
        """A screenshot; and, on every page, neither the full phone number nor a code shown
        (except in the form the user typed the number into)."""
        path = self.artifacts / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=path, full_page=True)
        self.shots.append(path)
        shown = self.page.inner_text("body")
        digits = re.sub(r"\D", "", self.phone)
        assert digits not in re.sub(r"\D", "", shown), f"{name}: the full phone number is shown"

    def fill(self, label: str, value: str) -> None:
        self.page.get_by_label(label, exact=True).fill(value)

    def press(self, button: str) -> None:
        self.page.get_by_role("button", name=button, exact=True).click()

    def sign_in(self, email: str, password: str = PASSWORD) -> None:
        self.go("/login")
        self.fill("Email", email)
        self.fill("Password", password)
        self.press("Sign in")

    def sign_out(self) -> None:
        self.press("Sign out")
        self.says("You're signed out.")

    def enter_code(self, code: str, button: str = "Verify") -> None:
        self.fill("Verification code", code)
        self.press(button)


def wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


def new_context(browser: Browser) -> BrowserContext:
    # Every page must work without JavaScript: the stories run with it off.
    context = browser.new_context(
        viewport={"width": 1100, "height": 820}, java_script_enabled=False
    )
    context.set_default_timeout(20_000)
    expect.set_options(timeout=20_000)  # a check waits for a worker's decision
    return context


@pytest.mark.slow
def test_the_login_site_story(
    browser: Browser, login_site: LoginSite, fast_system: System, artifacts: Path
) -> None:
    context = new_context(browser)
    try:
        me = Visitor(context.new_page(), login_site.url, artifacts, random_phone())
        email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
        sign_up_and_enrol(me, fast_system, email)
        recovery_code = me.page.locator("ul.codes code").all_inner_texts()[0]
        sign_in_with_a_wrong_code_first(me, fast_system, email)
        call_me_and_send_again_too_early(me, fast_system, email)
        locked_out_then_a_recovery_code(me, email, recovery_code)
        the_same_recovery_code_again_and_an_expired_code(me, fast_system, email, recovery_code)
        turn_off(me)
        a_security_notice_once_at_sign_in_then_listed(me, login_site, email)
        a_copied_cookie_is_refused_after_sign_out(me, browser, email)
        a_password_change_signs_the_other_browser_out(me, browser, email)
        the_sixth_wrong_password_is_refused(me, email)
        twostep_delivered_its_events_to_the_site(fast_system, login_site)
    finally:
        context.close()


@pytest.mark.slow
def test_codes_by_email_too_and_a_switch_at_sign_in(
    browser: Browser, login_site: LoginSite, fast_system: System, artifacts: Path
) -> None:
    """A phone first, then the account's email as a second factor; a sign-in that starts by
    email (the latest verified), switches to a text, and back; the address masked throughout."""
    context = new_context(browser)
    try:
        me = Visitor(context.new_page(), login_site.url, artifacts / "email", random_phone())
        me.artifacts.mkdir(parents=True, exist_ok=True)
        email = f"grace-{uuid.uuid4().hex[:8]}@example.com"
        sign_up_and_enrol(me, fast_system, email, typo=False)
        me.page.get_by_role("link", name="I've saved my codes").click()
        me.press("Email my codes too")
        me.says("Check your email")
        me.says("g•••@example.com")
        me.enter_code(fast_system.sandbox.latest_code(email))
        me.says("Your codes can now also go to g•••@example.com")
        me.says(re.compile(r"we send a code to \+1\d{3}•+\d{2} or g•••@example\.com"))
        me.shot("email-too")
        me.sign_out()

        me.sign_in(email)
        me.says("We emailed a code to g•••@example.com")
        assert email not in me.page.inner_text("body")  # before the sign-in: masked only
        by_email = fast_system.sandbox.latest_code(email)
        me.shot("sign-in-by-email")
        me.press("Text me instead")
        me.says("We sent a code by text message to")
        by_text = fast_system.sandbox.latest_code(me.phone)
        me.press("Email me instead")  # and back: a new code by email
        me.says("We emailed a code to g•••@example.com")
        me.enter_code(by_text)  # the text's code is no longer the one asked for
        me.says("That code isn't right")
        latest = fast_system.sandbox.latest_code(email)
        me.enter_code(latest)
        me.says("You're signed in.")
        assert len({by_email, by_text, latest}) == 3  # each switch: a new code
    finally:
        context.close()


@pytest.mark.slow
def test_an_authenticator_app_set_up_from_its_qr_code_and_used_once_per_code(
    browser: Browser, login_site: LoginSite, fast_system: System, artifacts: Path
) -> None:
    """The app's secret read off the page (as a user types it), its codes made here with
    pyotp; a sign-in by the app, a wrong code, a code used twice refused, a text instead."""
    context = new_context(browser)
    try:
        me = Visitor(context.new_page(), login_site.url, artifacts / "app", random_phone())
        me.artifacts.mkdir(parents=True, exist_ok=True)
        email = f"alan-{uuid.uuid4().hex[:8]}@example.com"
        sign_up_and_enrol(me, fast_system, email, typo=False)
        me.page.get_by_role("link", name="I've saved my codes").click()
        me.press("Set up an authenticator app")
        # Whoever holds the app can sign in: a code to the phone first.
        me.says("To set up an authenticator app")
        me.enter_code(fast_system.sandbox.latest_code(me.phone), "Confirm")
        me.says("Now set up your authenticator app")
        me.press("Set up an authenticator app")
        me.says("Set up your authenticator app")
        expect(me.page.locator("figure.qr svg")).to_have_count(1)
        me.shot("app-qr-code")
        totp = pyotp.TOTP(me.page.locator("#totp-secret").inner_text())
        # Codes as the sandbox's clock makes them (earlier stories moved it ahead).
        now = early_in_a_totp_step(totp.interval, offset=fast_system.sandbox.clock_offset())
        me.enter_code(totp.at(now))
        me.says("Your codes can now also come from your authenticator app")
        me.says("Your authenticator app makes sign-in codes too")
        me.sign_out()

        me.sign_in(email)  # the latest factor verified: the app
        me.says("Open your authenticator app and enter the code it shows")
        me.shot("sign-in-by-app")
        me.enter_code(wrong(totp.at(now + totp.interval)))
        me.says("That code isn't right")
        me.enter_code(totp.at(now + totp.interval))
        me.says("You're signed in.")
        me.sign_out()

        me.sign_in(email)
        me.enter_code(totp.at(now + totp.interval))  # the same code again
        me.says("That code isn't right")
        me.press("Text me instead")
        me.says("We sent a code by text message to")
        me.enter_code(fast_system.sandbox.latest_code(me.phone))
        me.says("You're signed in.")
    finally:
        context.close()


def sign_up_and_enrol(me: Visitor, system: System, email: str, *, typo: bool = True) -> None:
    """``typo``: a landline first (the one number every story shares: its sends count against
    one per-number limit, 5 in 10 minutes, so only the main stories type it)."""
    me.go("/signup")
    me.fill("Email", email)
    me.fill("Password", PASSWORD)
    me.press("Create account")
    me.says("Welcome!")
    expect(me.page.locator(".badge")).to_have_text("Off")
    me.shot("signed-up")

    if typo:
        # A typo'd number (a landline): refused with a reason, corrected in the same form.
        me.page.get_by_role("link", name="Turn on two-step verification").click()
        me.fill("Mobile phone number", LANDLINE)
        me.press("Send a code")
        me.says("That number is a landline")
        expect(me.page.get_by_label("Mobile phone number")).to_have_value(LANDLINE)
        me.shot("landline-refused")
        me.go("/settings")
        expect(me.page.locator(".badge")).to_have_text("Off")

    me.go("/settings/two-step")
    # As people type it: +1 (212) 555-0123.
    typed = f"{me.phone[:2]} ({me.phone[2:5]}) {me.phone[5:8]}-{me.phone[8:]}"
    me.fill("Mobile phone number", typed)
    me.press("Send a code")
    me.says("Check your phone")
    me.says(re.compile(r"\+1\d{3}•+\d{2}"))  # the number, masked
    me.shot("enrolment-code")
    me.enter_code(system.sandbox.latest_code(me.phone), "Verify and turn on")
    me.says("Two-step verification is on")
    me.says("Save these recovery codes now")
    expect(me.page.locator("ul.codes code")).to_have_count(10)
    me.shot("recovery-codes")


def sign_in_with_a_wrong_code_first(me: Visitor, system: System, email: str) -> None:
    codes = me.page.locator("ul.codes code").all_inner_texts()
    me.page.get_by_role("link", name="I've saved my codes").click()
    expect(me.page.locator(".badge")).to_have_text("On")
    assert not any(code in me.page.inner_text("body") for code in codes), "codes shown twice"
    me.shot("two-step-on")
    me.sign_out()

    me.sign_in(email)
    me.says("We sent a code by text message to")
    code = system.sandbox.latest_code(me.phone)
    me.enter_code(wrong(code))
    me.says("That code isn't right")
    me.shot("wrong-code")
    me.enter_code(code)
    me.says("You're signed in.")
    me.sign_out()


def call_me_and_send_again_too_early(me: Visitor, system: System, email: str) -> None:
    me.sign_in(email)
    me.says("We sent a code by text message to")
    code = system.sandbox.latest_code(me.phone)
    time.sleep(RESEND_COOLDOWN_SECONDS + 0.5)  # the code was sent just now
    me.press("Call me instead")
    me.says("We're calling")
    by_call = wait_until(
        lambda: (latest := system.sandbox.messages(me.phone)[0])["channel"] == "call" and latest,
        timeout=15,
        what="the code by call",
    )
    assert by_call["code"] == code
    me.press("Send the code again")
    me.says(re.compile(r"You can ask for another code in \d+ seconds?\."))
    me.shot("send-again-too-early")
    me.enter_code(code)
    me.says("You're signed in.")
    me.sign_out()


def locked_out_then_a_recovery_code(me: Visitor, email: str, recovery_code: str) -> None:
    me.sign_in(email)
    me.says("We sent a code by text message to")
    for _ in range(3):  # TWOSTEP_LOCKOUT_FAILURES
        me.enter_code("000000")
        me.says("That code isn't right")
    me.enter_code("000000")
    me.says(re.compile(r"Too many wrong codes\. For your security, you can try again in \d+"))
    me.shot("locked-out")

    # While locked, a recovery code is refused too; once the lock ends, it works.
    me.page.get_by_role("link", name="Use a recovery code instead").click()
    me.fill("Recovery code", recovery_code)
    me.press("Sign in")
    me.says("Too many wrong codes")
    wait = re.search(r"try again in (\d+) second", me.page.inner_text("main"))
    assert wait, me.page.inner_text("main")
    time.sleep(int(wait.group(1)) + 0.5)
    me.fill("Recovery code", recovery_code)
    me.press("Sign in")
    me.says("You're signed in with a recovery code")
    me.shot("signed-in-with-recovery-code")
    me.sign_out()


def the_same_recovery_code_again_and_an_expired_code(
    me: Visitor, system: System, email: str, recovery_code: str
) -> None:
    me.sign_in(email)
    me.page.get_by_role("link", name="Use a recovery code instead").click()
    me.fill("Recovery code", recovery_code)
    me.press("Sign in")
    me.says("That recovery code isn't valid, or it has been used already.")
    me.shot("recovery-code-used-twice")

    # The phone's code, typed after its lifetime: expired; a new one lets the user in.
    me.page.get_by_role("link", name="Back to the code from your phone").click()
    code = system.sandbox.latest_code(me.phone)
    system.sandbox.advance_clock(3600)  # the sandbox's codes live 10 minutes, as Twilio's
    me.enter_code(code)
    me.says("That code has expired.")
    me.shot("code-expired")
    me.press("Send the code again")
    me.says("We sent a new code to")
    me.enter_code(system.sandbox.latest_code(me.phone))
    me.says("You're signed in.")


def turn_off(me: Visitor) -> None:
    me.fill("Your password, to turn it off", PASSWORD)
    me.press("Turn off two-step verification")
    me.says("Two-step verification is off.")
    expect(me.page.locator(".badge")).to_have_text("Off")
    events = me.page.locator("table.events")
    for seen in (
        "Phone removed from two-step verification",
        "Wrong recovery code entered",
        "Signed in with a recovery code",
        "Locked after too many wrong codes",
        "Wrong code entered",
        "Sign-in code requested",
    ):
        expect(events).to_contain_text(seen)
    me.shot("security-events")


def a_security_notice_once_at_sign_in_then_listed(me: Visitor, site: LoginSite, email: str) -> None:
    """twostep's own notice of the phone removed a moment ago, and one signed here as twostep
    signs (a phone added by someone else), each shown once at the next sign-in."""
    with sqlite3.connect(site.database) as db:
        user_id = db.execute("SELECT id FROM users WHERE email = ?", (email,)).fetchone()[0]

    def kept(kind: str) -> bool:
        with sqlite3.connect(site.database) as db:
            query = "SELECT COUNT(*) FROM notices WHERE user_id = ? AND type = ?"
            return bool(db.execute(query, (user_id, kind)).fetchone()[0])

    wait_until(lambda: kept("factor.removed"), timeout=30, interval=0.2, what="factor.removed")
    factor = {"id": uuid.uuid4().hex, "user_id": user_id, "phone": "+1212•••••77",
              "channel": "sms", "status": "verified", "created_at": _now(),
              "verified_at": _now()}  # fmt: skip
    event = {"id": uuid.uuid4().hex, "type": "factor.added", "created_at": _now(), "data": factor}
    body = json.dumps(event).encode()
    stamp = str(int(time.time()))
    signature = hmac.new(site.webhook_secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    headers = {"Twostep-Signature": f"t={stamp},v1={signature.hexdigest()}"}
    delivered = httpx.post(f"{site.url}/twostep/webhooks", content=body, headers=headers)
    assert delivered.status_code == 204

    me.sign_out()
    me.sign_in(email)
    banner = me.page.locator(".alert-warning").filter(has_text="was added")
    expect(banner).to_contain_text(
        re.compile(r"A new phone \(\+1212•+77\) was added to your account on .+ UTC\. Not you\?")
    )
    expect(me.page.locator(".alert-warning").filter(has_text="was removed")).to_contain_text(
        re.compile(r"A phone \(\+1\d{3}•+\d{2}\) was removed from your account on ")
    )
    me.shot("security-notice-banner")
    me.go("/settings")
    expect(me.page.locator(".alert-warning")).to_have_count(0)  # the banner was once
    expect(me.page.locator("ul.notices")).to_contain_text("A new phone (+1212•••••77) was added")
    me.shot("security-notices")


def a_copied_cookie_is_refused_after_sign_out(me: Visitor, browser: Browser, email: str) -> None:
    cookie = next(c for c in me.page.context.cookies() if c["name"] == COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert not cookie["secure"]  # development: plain http on loopback
    me.sign_out()
    replayed = httpx.get(f"{me.site}/settings", cookies={COOKIE: cookie["value"]})
    assert replayed.status_code == 303 and replayed.headers["location"] == "/login"

    thief = new_context(browser)
    try:
        thief.add_cookies([{"name": COOKIE, "value": cookie["value"], "url": me.site}])
        someone = me.beside(thief.new_page())
        someone.go("/settings")
        expect(someone.page.get_by_role("heading", level=1)).to_have_text("Sign in")
        someone.shot("copied-cookie-refused")
    finally:
        thief.close()


def a_password_change_signs_the_other_browser_out(
    me: Visitor, browser: Browser, email: str
) -> None:
    me.sign_in(email)
    other_context = new_context(browser)
    try:
        other = me.beside(other_context.new_page())
        other.sign_in(email)
        expect(other.page.get_by_role("heading", level=1)).to_have_text("Security")

        me.fill("Current password", PASSWORD)
        me.fill("New password", NEW_PASSWORD)
        me.press("Change password")
        me.says("Your password is changed, and you're signed out everywhere else.")
        me.shot("password-changed")

        other.go("/settings")
        expect(other.page.get_by_role("heading", level=1)).to_have_text("Sign in")
        other.shot("other-browser-signed-out")
        me.go("/settings")
        expect(me.page.get_by_role("heading", level=1)).to_have_text("Security")
    finally:
        other_context.close()


def the_sixth_wrong_password_is_refused(me: Visitor, email: str) -> None:
    me.sign_out()
    for _ in range(5):
        me.sign_in(email, "not my password")
        me.says("That email and password don't match an account.")
    me.sign_in(email, NEW_PASSWORD)  # right, but the 6th try: not even read
    me.says("Too many attempts with a wrong password. Please try again in 15 minutes.")
    me.shot("sixth-password-refused")


def twostep_delivered_its_events_to_the_site(system: System, site: LoginSite) -> None:
    """twostep's own deliveries (every code sent is an event) pass the site's signature check."""
    admin = {"Authorization": f"Bearer {system.api_key}"}

    def deliveries() -> list[dict[str, object]]:
        answer = httpx.get(
            f"{system.api_url}/v1/webhook-deliveries",
            params={"endpoint_id": site.webhook_endpoint, "limit": 100},
            headers=admin,
        )
        assert answer.status_code == 200, answer.text
        return list(answer.json()["deliveries"])

    wait_until(
        lambda: any(d["status"] == "delivered" for d in deliveries()),
        timeout=30,
        interval=0.5,
        what="a webhook delivery the site accepted",
    )
    refused = [d for d in deliveries() if d["last_http_status"] not in (None, 204)]
    assert refused == []


def _now() -> str:
    return datetime.now(UTC).isoformat()


@pytest.mark.slow
def test_a_change_asks_for_a_code_and_an_idle_session_ends(
    browser: Browser, fast_system: System, tmp_path: Path, artifacts: Path
) -> None:
    settings = {"LOGIN_SITE_IDLE_SECONDS": str(IDLE_SECONDS)}
    with running_login_site(fast_system, tmp_path, **settings) as site:
        context = new_context(browser)
        try:
            me = Visitor(context.new_page(), site.url, artifacts, random_phone())
            sign_up_and_enrol(me, fast_system, f"grace-{uuid.uuid4().hex[:8]}@example.com")
            me.page.get_by_role("link", name="I've saved my codes").click()

            # Two-step went on in this session: it never passed a second step, so turning
            # two-step off waits for a code, and then carries on.
            me.fill("Your password, to turn it off", PASSWORD)
            me.press("Turn off two-step verification")
            me.says("To turn off two-step verification, enter the code we sent by text message")
            me.shot("confirm-its-you")
            me.enter_code(fast_system.sandbox.latest_code(me.phone), "Confirm")
            me.says("Two-step verification is off.")
            expect(me.page.locator(".badge")).to_have_text("Off")

            time.sleep(IDLE_SECONDS + 1)  # left alone past the idle limit
            me.go("/settings")
            me.says(f"You were signed out after {IDLE_SECONDS} seconds without activity.")
            expect(me.page.get_by_role("heading", level=1)).to_have_text("Sign in")
            me.shot("signed-out-when-idle")
        finally:
            context.close()
