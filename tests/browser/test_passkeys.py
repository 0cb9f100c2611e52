"""Passkeys on the reference login site, in a browser with JavaScript on, against twostep's real
processes: Chrome's virtual authenticator (the DevTools protocol's WebAuthn domain) is the
device. A passkey added on the security page (after a code confirms it's the user), a sign-in
with it, a change confirmed with it; then another device that never registered it is refused by
the browser, a replayed answer by twostep, and the codes still sign in, with JavaScript and
without; the passkey removed, it is offered no more. The site is opened at localhost (WebAuthn
takes no IP address), the tenant's relying party set to that origin first."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from playwright.sync_api import Browser, BrowserContext, CDPSession, Page, Request, expect

from tests.browser.conftest import LoginSite, running_login_site
from tests.browser.test_login_site import Visitor, sign_up_and_enrol
from tests.e2e.conftest import System
from tests.support import random_phone

FRESH_SECONDS = 8  # a second step older than this is asked for again before a change
LABEL = "Ada's laptop"
AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
}


@pytest.fixture
def passkey_site(fast_system: System, tmp_path: Path) -> Iterator[LoginSite]:
    """The site, opened as localhost, and the default tenant's relying party for that origin."""
    settings = {"LOGIN_SITE_FRESH_SECONDS": str(FRESH_SECONDS)}
    with running_login_site(fast_system, tmp_path, **settings) as site:
        url = site.url.replace("127.0.0.1", "localhost")
        fast_system.run("tenants", "passkeys", "default", "--rp-id", "localhost", "--origin", url)
        yield LoginSite(url, site.database, site.webhook_secret, site.webhook_endpoint)


def new_context(browser: Browser, *, javascript: bool) -> BrowserContext:
    context = browser.new_context(
        viewport={"width": 1100, "height": 820}, java_script_enabled=javascript
    )
    context.set_default_timeout(20_000)
    expect.set_options(timeout=20_000)  # a check waits for a worker's decision
    return context


class Device:
    """The page's virtual authenticator: as a laptop's fingerprint reader, always touched."""

    def __init__(self, page: Page) -> None:
        self.cdp: CDPSession = page.context.new_cdp_session(page)
        self.cdp.send("WebAuthn.enable")
        self.id = self._added()

    def _added(self) -> str:
        added = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
        return str(added["authenticatorId"])

    def credentials(self) -> list[dict[str, Any]]:
        answer = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.id})
        return list(answer["credentials"])

    def replaced(self) -> Device:
        """This device gone, and another that never registered anything in its place."""
        self.cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": self.id})
        self.id = self._added()
        return self


class Posted:
    """The credentials the page's script posted, as the site received them."""

    def __init__(self, page: Page) -> None:
        self.credentials: list[str] = []
        page.on("request", self._seen)

    def _seen(self, request: Request) -> None:
        if request.method == "POST" and request.post_data:
            posted = parse_qs(request.post_data).get("credential", [""])[0]
            if posted:
                self.credentials.append(posted)


@pytest.mark.slow
def test_a_passkey_added_signs_in_and_once_removed_no_more(
    browser: Browser,
    passkey_site: LoginSite,
    fast_system: System,
    artifacts: Path,
    tmp_path: Path,
) -> None:
    context = new_context(browser, javascript=True)
    try:
        me = Visitor(context.new_page(), passkey_site.url, artifacts, random_phone())
        device, posted = Device(me.page), Posted(me.page)
        email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
        sign_up_and_enrol(me, fast_system, email, typo=False)
        me.page.get_by_role("link", name="I've saved my codes").click()

        add_a_passkey(me, fast_system, device)
        sign_in_with_it_and_confirm_a_change_with_it(me, email, device, posted)
        another_device_is_refused_and_the_codes_remain(me, fast_system, email, device, posted)
        without_javascript_the_codes_sign_in(me, browser, fast_system, email)
        remove_it(me, fast_system)
        removed_it_is_offered_no_more(me, fast_system, email)
    finally:
        context.close()
    # The site handed every answer over and kept none: not in its database, not in its log.
    signed = r'"(?:attestationObject|clientDataJSON|signature)":"([^"]+)"'
    parts = [part for answer in posted.credentials for part in re.findall(signed, answer)]
    assert len(parts) >= 2 * len(posted.credentials) >= 8
    for path in [tmp_path / "login-site.log", *tmp_path.glob("login-site.db*")]:
        kept = path.read_bytes()
        assert not [part for part in parts if part.encode() in kept], path


def add_a_passkey(me: Visitor, system: System, device: Device) -> None:
    me.fill("Name for a new passkey", LABEL)
    me.press("Add a passkey")
    # Two-step went on in this session without a second step: a code confirms it's the user.
    me.says("To add a passkey, enter the code we sent by text message")
    me.enter_code(system.sandbox.latest_code(me.phone), "Confirm")
    expect(me.page.get_by_role("heading", level=1)).to_have_text("Add a passkey")
    me.says(f"It will be called {LABEL}")
    me.shot("add-a-passkey")
    me.press("Create the passkey")
    me.says(f"Your passkey “{LABEL}” is added: you can sign in with it.")
    expect(me.page.locator("ul.passkeys")).to_contain_text(LABEL)
    expect(me.page.locator("table.events")).to_contain_text(
        "Passkey added for two-step verification"
    )
    [credential] = device.credentials()
    assert credential["rpId"] == "localhost"
    me.shot("passkey-added")
    me.sign_out()


def sign_in_with_it_and_confirm_a_change_with_it(
    me: Visitor, email: str, device: Device, posted: Posted
) -> None:
    me.sign_in(email)
    me.says("Use your passkey to finish signing in")
    expect(me.page.get_by_role("button", name="Text me instead")).to_be_visible()
    expect(me.page.get_by_text("Passkeys need JavaScript")).to_be_hidden()  # it is on
    me.shot("sign-in-with-a-passkey")
    signed = device.credentials()[0]["signCount"]
    me.press("Sign in with a passkey")
    me.says("You're signed in.")
    expect(me.page.get_by_role("heading", level=1)).to_have_text("Security")
    assert device.credentials()[0]["signCount"] > signed
    assert len(posted.credentials) == 2  # the new passkey's attestation, then the assertion

    # A change once the second step is no longer fresh: confirmed with the passkey too.
    time.sleep(FRESH_SECONDS + 1)
    me.press("New recovery codes")
    me.says("To make new recovery codes, use your passkey.")
    me.shot("confirm-with-a-passkey")
    me.press("Confirm with a passkey")
    me.says("Your new recovery codes")
    expect(me.page.locator("ul.codes code")).to_have_count(10)
    me.page.get_by_role("link", name="I've saved my codes").click()
    me.sign_out()


def another_device_is_refused_and_the_codes_remain(
    me: Visitor, system: System, email: str, device: Device, posted: Posted
) -> None:
    device.replaced()
    me.sign_in(email)
    me.says("Use your passkey to finish signing in")
    sent = len(posted.credentials)
    me.press("Sign in with a passkey")
    me.says("Your passkey wasn't used: it was canceled, or this device has no passkey")
    assert len(posted.credentials) == sent  # the browser had nothing to sign: nothing posted
    assert me.page.url.endswith("/login/code")
    expect(me.page.get_by_role("button", name="Text me instead")).to_be_visible()
    me.shot("another-device-refused")

    # The earlier sign-in's answer, posted again: twostep refuses what was signed for another.
    me.page.evaluate(
        """(credential) => {
            const form = document.querySelector("form[data-passkey]");
            form.elements.credential.value = credential;
            form.submit();
        }""",
        posted.credentials[1],
    )
    me.says("That passkey wasn't accepted. Try again, or use another way.")
    expect(me.page.get_by_role("link", name="Use a recovery code instead")).to_be_visible()
    me.shot("replayed-answer-refused")
    me.press("Text me instead")
    me.says("We sent a code by text message to")
    me.enter_code(system.sandbox.latest_code(me.phone))
    me.says("You're signed in.")


def without_javascript_the_codes_sign_in(
    me: Visitor, browser: Browser, system: System, email: str
) -> None:
    context = new_context(browser, javascript=False)
    try:
        plain = me.beside(context.new_page())
        plain.sign_in(email)
        plain.says("Use your passkey to finish signing in")
        plain.says("Passkeys need JavaScript, which is off in this browser.")
        plain.press("Sign in with a passkey")  # posts no credential: said so, nothing spent
        plain.says("Passkeys need JavaScript, which is off in this browser. Please use another")
        plain.shot("passkey-without-javascript")
        plain.press("Text me instead")
        plain.says("We sent a code by text message to")
        plain.enter_code(system.sandbox.latest_code(me.phone))
        plain.says("You're signed in.")
    finally:
        context.close()


def remove_it(me: Visitor, system: System) -> None:
    """The user's last strong factor: a fresh second step first, which is the user's
    agreement to the downgrade. The passkey's device is gone: a text instead."""
    time.sleep(FRESH_SECONDS + 1)
    me.page.get_by_role("button", name=f"Remove the passkey {LABEL}").click()
    me.says("To remove a passkey, use your passkey.")
    me.press("Text me a code instead")
    me.says("To remove a passkey, enter the code we sent by text message")
    me.enter_code(system.sandbox.latest_code(me.phone), "Confirm")
    me.says(f"Your passkey “{LABEL}” is removed: it no longer signs you in.")
    expect(me.page.locator("ul.passkeys")).to_have_count(0)
    expect(me.page.locator("table.events")).to_contain_text(
        "Passkey removed from two-step verification"
    )
    me.shot("passkey-removed")
    me.sign_out()


def removed_it_is_offered_no_more(me: Visitor, system: System, email: str) -> None:
    me.sign_in(email)
    me.says("We sent a code by text message to")
    expect(me.page.get_by_role("button", name="Sign in with a passkey")).to_have_count(0)
    expect(me.page.get_by_role("button", name="Use my passkey")).to_have_count(0)
    me.shot("removed-passkey-not-offered")
    me.enter_code(system.sandbox.latest_code(me.phone))
    me.says("You're signed in.")
