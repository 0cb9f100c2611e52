"""The reference login site's whole story in a browser, against twostep's real processes: sign
up, a typo'd phone that cannot turn anything on, enrolment and recovery codes, sign-ins with a
wrong code, a call and a re-send asked for too early, a lockout, recovery codes (once), an
expired code, and two-step turned off — asserting on what each page says."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import RESEND_COOLDOWN_SECONDS
from tests.e2e.conftest import System
from tests.support import random_phone, wait_until

LANDLINE = "+14155550201"  # the sandbox answers it as Twilio answers a landline
PASSWORD = "correct horse battery staple"


@dataclass
class Visitor:
    """One person at the site: a browser page, and a screenshot of every step."""

    page: Page
    site: str
    artifacts: Path
    phone: str
    steps: int = 0
    shots: list[Path] = field(default_factory=list)

    def go(self, path: str) -> None:
        self.page.goto(self.site + path)

    def says(self, text: str | re.Pattern[str]) -> None:
        expect(self.page.locator("main")).to_contain_text(text)

    def shot(self, name: str) -> None:
        """A screenshot; and, on every page, neither the full phone number nor a code shown
        (except in the form the user typed the number into)."""
        self.steps += 1
        path = self.artifacts / f"{self.steps:02d}-{name}.png"
        self.page.screenshot(path=path, full_page=True)
        self.shots.append(path)
        shown = self.page.inner_text("body")
        digits = re.sub(r"\D", "", self.phone)
        assert digits not in re.sub(r"\D", "", shown), f"{name}: the full phone number is shown"

    def fill(self, label: str, value: str) -> None:
        self.page.get_by_label(label, exact=True).fill(value)

    def press(self, button: str) -> None:
        self.page.get_by_role("button", name=button, exact=True).click()

    def sign_in(self, email: str) -> None:
        self.go("/login")
        self.fill("Email", email)
        self.fill("Password", PASSWORD)
        self.press("Sign in")

    def sign_out(self) -> None:
        self.press("Sign out")
        self.says("You're signed out.")

    def enter_code(self, code: str, button: str = "Verify") -> None:
        self.fill("Verification code", code)
        self.press(button)


def wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


@pytest.mark.slow
def test_the_login_site_story(
    browser: Browser, login_site: str, fast_system: System, artifacts: Path
) -> None:
    # Every page must work without JavaScript: the story runs with it off.
    context = browser.new_context(
        viewport={"width": 1100, "height": 820}, java_script_enabled=False
    )
    context.set_default_timeout(20_000)
    expect.set_options(timeout=20_000)  # a check waits for a worker's decision
    try:
        me = Visitor(context.new_page(), login_site, artifacts, random_phone())
        email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
        sign_up_and_enrol(me, fast_system, email)
        recovery_code = me.page.locator("ul.codes code").all_inner_texts()[0]
        sign_in_with_a_wrong_code_first(me, fast_system, email)
        call_me_and_send_again_too_early(me, fast_system, email)
        locked_out_then_a_recovery_code(me, email, recovery_code)
        the_same_recovery_code_again_and_an_expired_code(me, fast_system, email, recovery_code)
        turn_off(me)
    finally:
        context.close()


def sign_up_and_enrol(me: Visitor, system: System, email: str) -> None:
    me.go("/signup")
    me.fill("Email", email)
    me.fill("Password", PASSWORD)
    me.press("Create account")
    me.says("Welcome!")
    expect(me.page.locator(".badge")).to_have_text("Off")
    me.shot("signed-up")

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
