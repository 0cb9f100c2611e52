"""Logins with an authenticator app (TOTP) on both sides: no message on the way, so a login is
bounded by what it costs each side, not by an SMS round trip.

Each simulated user is enrolled before the storm, untimed and unmetered: an app made at the
sandbox through each side's own API, verified by a first code. A login is then, for twostep, a
challenge (``pending`` at once) and a check its worker takes to Twilio's Challenges API; for the
inline baseline, one request that makes the Twilio challenge inside it. Codes are made here with
``pyotp`` on the sandbox's clock, never the same one twice per user: twostep refuses a code
replayed within its validity, as it should.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pyotp

from benchmarks.processes import say
from benchmarks.storm import WAIT_SECONDS, LoginFailed, Recorder, expect, poll_decided

# Enrolments in flight at once: enough to be done in seconds, few enough not to trip a limit.
_ENROLLING_AT_ONCE = 25


class AppCodes:
    """One user's authenticator app: its codes now, each handed out once."""

    def __init__(self, secret: str, clock_offset: float) -> None:
        self.totp = pyotp.TOTP(secret)
        self.clock_offset = clock_offset
        self.used: set[str] = set()

    def fresh(self) -> str:
        """A code valid now (this step's, else the next's or the last's: a skew of one step)
        that this user has not used."""
        now, step = time.time() + self.clock_offset, self.totp.interval
        for moment in (now, now + step, now - step):
            code = self.totp.at(moment)
            if code not in self.used:
                self.used.add(code)
                return code
        raise LoginFailed("every code the app shows now was used")


async def sandbox_clock_offset(http: aiohttp.ClientSession, sandbox_url: str) -> float:
    async with http.get(f"{sandbox_url}/sandbox/clock") as response:
        response.raise_for_status()
        return float((await response.json())["offset_seconds"])


async def enrol_all(
    label: str,
    count: int,
    enrol: Callable[[int], Awaitable[None]],
    what: str = "authenticator apps",
) -> None:
    """``enrol`` each user number below ``count``, a few at a time; any failure stops the run."""
    gate = asyncio.Semaphore(_ENROLLING_AT_ONCE)
    started = time.monotonic()

    async def one(number: int) -> None:
        async with gate:
            await enrol(number)

    await asyncio.gather(*(one(number) for number in range(count)))
    say(f"{label}: {count} {what} enrolled in {time.monotonic() - started:.1f} s")


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))


@dataclass
class TwostepApp:
    """twostep with authenticator apps: ``POST …/factors {"type": "totp"}`` and a first code to
    enrol; a login is a challenge and a check, long-polled as the SMS login's are."""

    api_url: str
    api_key: str
    sandbox_url: str
    user_offset: int = 0
    name: str = "twostep"
    apps: dict[int, AppCodes] = field(default_factory=dict)

    @property
    def health_url(self) -> str:
        return f"{self.api_url}/healthz"

    def _user(self, number: int) -> str:
        return f"bench-{self.user_offset + number}"

    async def prepare(self, logins: int) -> None:
        async with session() as http:
            offset = await sandbox_clock_offset(http, self.sandbox_url)
            record = Recorder()

            async def enrol(number: int) -> None:
                path = f"/v1/users/{self._user(number)}/factors"
                made = await self._call(http, record, "enrol", path, {"type": "totp"})
                uri = str(made["otpauth_uri"])
                codes = AppCodes(parse_qs(urlsplit(uri).query)["secret"][0], offset)
                verification_id = made["verification"]["id"]
                await self._checked(http, record, verification_id, {"code": codes.fresh()})
                self.apps[number] = codes

            await enrol_all("twostep", logins, enrol)

    async def login(self, http: aiohttp.ClientSession, number: int, record: Recorder) -> None:
        path = f"/v1/users/{self._user(number)}/challenges"
        challenge = await self._call(http, record, "create", path, {})
        if challenge["status"] != "pending":
            raise LoginFailed(f"challenge {challenge['status']}")
        await self._checked(http, record, challenge["id"], {"code": self.apps[number].fresh()})

    async def _call(
        self, http: aiohttp.ClientSession, record: Recorder, kind: str, path: str, body: Any
    ) -> dict[str, Any]:
        url, auth = f"{self.api_url}{path}", {"Authorization": f"Bearer {self.api_key}"}
        response = await record.call(http, kind, "POST", url, json=body, headers=auth)
        return expect(response, kind, (200, 202))

    async def _checked(
        self,
        http: aiohttp.ClientSession,
        record: Recorder,
        verification_id: str,
        answer: dict[str, Any],
    ) -> None:
        url = f"{self.api_url}/v1/verifications/{verification_id}/checks"
        auth = {"Authorization": f"Bearer {self.api_key}"}
        started = time.monotonic()
        response = await record.call(
            http, "check", "POST", url, params={"wait": str(WAIT_SECONDS)}, json=answer,
            headers=auth,
        )  # fmt: skip
        check = expect(response, "check", (200, 202))
        if check["status"] == "queued":
            early = time.monotonic() - started < WAIT_SECONDS / 2
            check = await poll_decided(
                http, record, "read_check", f"{url}/{check['id']}", auth, early=early
            )
        if check["status"] != "approved":
            raise LoginFailed(f"check {check['status']}")


@dataclass
class InlineApp:
    """The inline baseline with authenticator apps: Twilio's Factors and Challenges APIs called
    inside the request, one call per login."""

    url: str
    sandbox_url: str
    run_id: str
    name: str = "inline"
    apps: dict[int, tuple[str, str, AppCodes]] = field(default_factory=dict)

    @property
    def health_url(self) -> str:
        return f"{self.url}/healthz"

    async def prepare(self, logins: int) -> None:
        async with session() as http:
            offset = await sandbox_clock_offset(http, self.sandbox_url)
            record = Recorder()

            async def enrol(number: int) -> None:
                entity = f"bench-{self.run_id}-{number:06d}"
                made = await self._post(http, record, "/factors/totp", {"entity": entity})
                sid, codes = str(made["factor_sid"]), AppCodes(str(made["secret"]), offset)
                body = {"entity": entity, "factor_sid": sid, "code": codes.fresh()}
                verified = await self._post(http, record, "/factors/totp/verify", body)
                if verified.get("status") != "verified":
                    raise LoginFailed(f"factor {verified.get('status')}")
                self.apps[number] = (entity, sid, codes)

            await enrol_all("inline", logins, enrol)

    async def login(self, http: aiohttp.ClientSession, number: int, record: Recorder) -> None:
        entity, sid, codes = self.apps[number]
        body = {"entity": entity, "factor_sid": sid, "code": codes.fresh()}
        check = await self._post(http, record, "/login/totp", body)
        if check.get("status") != "approved":
            raise LoginFailed(f"challenge {check.get('status')}")

    async def _post(
        self, http: aiohttp.ClientSession, record: Recorder, path: str, body: Any
    ) -> dict[str, Any]:
        kind = path.strip("/").replace("/", "_")
        response = await record.call(http, kind, "POST", f"{self.url}{path}", json=body)
        return expect(response, kind, (200,))
