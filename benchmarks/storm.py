"""The login storm: simulated users logging in through twostep or the inline baseline, a prober
timing a cheap request beside them, and the statistics of what they saw."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import phonenumbers

from benchmarks.processes import say

LOGIN_TIMEOUT = 120.0
WAIT_SECONDS = 30
# Between two asks when the server answered a long-poll at once (it ignores ``wait``).
POLL_PAUSE = 0.05
PROBE_INTERVAL = 0.05
PROBE_TIMEOUT = 30.0
PROGRESS_INTERVAL = 3.0
# Area codes whose 2xx-9xx exchanges are valid; 555 exchanges are avoided because the sandbox
# refuses some +1415555… numbers on purpose.
_AREA_CODES = ("212", "312", "415", "617", "646", "206", "305", "713", "303", "404")


def random_phone() -> str:
    while True:
        number = (
            f"+1{random.choice(_AREA_CODES)}{random.randint(200, 999)}{random.randint(0, 9999):04d}"
        )
        if number[5:8] != "555" and phonenumbers.is_valid_number(phonenumbers.parse(number)):
            return number


class LoginFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Call:
    kind: str
    seconds: float
    long_poll: bool


@dataclass(frozen=True)
class Login:
    seconds: float
    reason: str | None  # None: the login succeeded


# The connection was closed under the request: a kept-alive connection reused just as the server
# closed it. A GET is safe to send again; a POST never is.
_CONNECTION_LOST = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: Any


async def _answer(response: aiohttp.ClientResponse) -> Answer:
    try:
        body = await response.json(content_type=None)
    except ValueError:
        body = None
    return Answer(response.status, body)


@dataclass
class Recorder:
    """What one storm saw. One event loop, so plain lists are safe."""

    logins: list[Login] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    probes: list[float] = field(default_factory=list)
    probe_errors: int = 0
    resent: Counter[str] = field(default_factory=Counter)  # GETs sent twice, by kind

    async def send(
        self, http: aiohttp.ClientSession, kind: str, method: str, url: str, **kwargs: Any
    ) -> Answer:
        """The request; a GET whose connection was lost is sent once more, and counted."""
        try:
            async with http.request(method, url, **kwargs) as response:
                return await _answer(response)
        except _CONNECTION_LOST:
            if method != "GET":
                raise
            self.resent[kind] += 1
            async with http.request(method, url, **kwargs) as response:
                return await _answer(response)

    async def call(
        self, http: aiohttp.ClientSession, kind: str, method: str, url: str, **kwargs: Any
    ) -> Answer:
        """One timed call to the system under test; a long-poll is a call with ``wait``."""
        long_poll = "wait" in kwargs.get("params", {})
        started = time.monotonic()
        try:
            response = await self.send(http, kind, method, url, **kwargs)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.calls.append(Call(kind, time.monotonic() - started, long_poll))
            raise LoginFailed(f"{kind}: {type(exc).__name__}") from exc
        self.calls.append(Call(kind, time.monotonic() - started, long_poll))
        return response


class System(Protocol):
    name: str

    @property
    def health_url(self) -> str:
        """A cheap request of the system under test, for the prober."""

    async def prepare(self, logins: int) -> None:
        """Before the storm, untimed and unmetered: what the users need to exist."""

    async def login(self, http: aiohttp.ClientSession, number: int, record: Recorder) -> None:
        """Log one user in; raise ``LoginFailed`` with the reason if it does not succeed."""


def expect(response: Answer, kind: str, statuses: tuple[int, ...]) -> dict[str, Any]:
    problem = response.body
    if response.status_code not in statuses:
        reason = f"{kind}: HTTP {response.status_code}"
        if isinstance(problem, dict) and isinstance(problem.get("code"), str):
            reason += f" {problem['code']}"
        raise LoginFailed(reason)
    if not isinstance(problem, dict):
        raise LoginFailed(f"{kind}: not a JSON object")
    return problem


async def read_code(
    http: aiohttp.ClientSession, record: Recorder, sandbox_url: str, to: str
) -> str:
    """The code the user's phone received (not a call to the system under test)."""
    url = f"{sandbox_url}/sandbox/messages"
    try:
        messages = (await record.send(http, "sandbox_inbox", "GET", url, params={"to": to})).body
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise LoginFailed(f"sandbox inbox: {type(exc).__name__}") from exc
    if not messages:
        raise LoginFailed("no code reached the phone")
    return str(messages[0]["code"])


@dataclass
class Twostep:
    """The login server's side of twostep: ask for a code, wait for it to be sent, hand over the
    code, wait for the decision."""

    api_url: str
    api_key: str
    sandbox_url: str
    user_offset: int = 0
    name: str = "twostep"

    @property
    def health_url(self) -> str:
        return f"{self.api_url}/healthz"

    async def prepare(self, logins: int) -> None:
        """Nothing: a code by SMS needs only a phone number, made up at each login."""

    async def login(self, http: aiohttp.ClientSession, number: int, record: Recorder) -> None:
        to = random_phone()
        auth = {"Authorization": f"Bearer {self.api_key}"}
        base = f"{self.api_url}/v1/verifications"
        user_id = f"bench-{self.user_offset + number}"
        started = time.monotonic()
        response = await record.call(
            http,
            "create",
            "POST",
            base,
            params=_WAIT,
            json={"to": to, "user_id": user_id},
            headers=auth,
        )
        verification = expect(response, "create", (200, 202))
        url = f"{base}/{verification['id']}"
        if verification["status"] in _UNDECIDED:
            early = time.monotonic() - started < WAIT_SECONDS / 2
            verification = await poll_decided(
                http, record, "read_verification", url, auth, early=early
            )
        if verification["status"] != "pending":
            error = (verification.get("error") or {}).get("code")
            raise LoginFailed(f"verification {verification['status']} {error or ''}".strip())
        code = await read_code(http, record, self.sandbox_url, to)
        started = time.monotonic()
        response = await record.call(
            http, "check", "POST", f"{url}/checks", params=_WAIT, json={"code": code}, headers=auth
        )
        check = expect(response, "check", (200, 202))
        if check["status"] == "queued":
            early = time.monotonic() - started < WAIT_SECONDS / 2
            check_url = f"{url}/checks/{check['id']}"
            check = await poll_decided(http, record, "read_check", check_url, auth, early=early)
        if check["status"] != "approved":
            raise LoginFailed(f"check {check['status']}")


_WAIT = {"wait": str(WAIT_SECONDS)}
_UNDECIDED = frozenset({"queued", "sending"})


async def poll_decided(
    http: aiohttp.ClientSession,
    record: Recorder,
    kind: str,
    url: str,
    headers: dict[str, str],
    *,
    early: bool,
) -> dict[str, Any]:
    """Long-poll ``url`` until its status is decided. An undecided answer that came back long
    before ``wait`` means the server does not hold requests: pause so that this still works as
    polling rather than a busy loop."""
    while True:
        if early:
            await asyncio.sleep(POLL_PAUSE)
        started = time.monotonic()
        response = await record.call(http, kind, "GET", url, params=_WAIT, headers=headers)
        body = expect(response, kind, (200,))
        if body["status"] not in _UNDECIDED:
            return body
        early = time.monotonic() - started < WAIT_SECONDS / 2


@dataclass
class Inline:
    """The inline baseline: each of its two calls talks to Twilio inside the request."""

    url: str
    sandbox_url: str
    name: str = "inline"

    @property
    def health_url(self) -> str:
        return f"{self.url}/healthz"

    async def prepare(self, logins: int) -> None:
        """Nothing: a code by SMS needs only a phone number, made up at each login."""

    async def login(self, http: aiohttp.ClientSession, number: int, record: Recorder) -> None:
        del number  # the baseline keeps no user ids
        to = random_phone()
        response = await record.call(
            http, "start", "POST", f"{self.url}/login/start", json={"to": to}
        )
        expect(response, "start", (200,))
        code = await read_code(http, record, self.sandbox_url, to)
        response = await record.call(
            http, "check", "POST", f"{self.url}/login/check", json={"to": to, "code": code}
        )
        check = expect(response, "check", (200,))
        if check.get("status") != "approved":
            raise LoginFailed(f"check {check.get('status')}")


@dataclass(frozen=True)
class StormResult:
    record: Recorder
    wall_seconds: float


async def run_storm(
    system: System, users: int, logins: int, label: str, *, ramp: float = 0.0
) -> StormResult:
    """``users`` tasks take login numbers from one counter until ``logins`` have been taken;
    they start evenly over ``ramp`` seconds (all at once when 0). The prober runs on a thread of
    its own so that the users' event loop, busy with a thousand of them, does not delay it."""
    record = Recorder()
    numbers = itertools.count()
    # aiohttp rather than httpx: its pool costs the same whatever the number of connections,
    # where httpx's looks at every one for every request, and the load generator shares the
    # machine's two cores with the systems it measures.
    connector = aiohttp.TCPConnector(limit=users + 100, keepalive_timeout=4)
    timeout = aiohttp.ClientTimeout(total=LOGIN_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def user(index: int) -> None:
            await asyncio.sleep(ramp * index / users)
            while (number := next(numbers)) < logins:
                await _one_login(system, http, number, record)

        prober = Prober(system.health_url, record)
        progress = asyncio.create_task(_progress(label, record, logins))
        started = time.monotonic()
        try:
            with prober:
                await asyncio.gather(*(user(index) for index in range(users)))
                wall_seconds = time.monotonic() - started
        finally:
            progress.cancel()
    return StormResult(record, wall_seconds)


async def _one_login(
    system: System, http: aiohttp.ClientSession, number: int, record: Recorder
) -> None:
    started = time.monotonic()
    reason: str | None = None
    try:
        await asyncio.wait_for(system.login(http, number, record), LOGIN_TIMEOUT)
    except LoginFailed as exc:
        reason = exc.reason
    except TimeoutError:
        reason = f"took longer than {LOGIN_TIMEOUT:.0f} s"
    except (KeyError, TypeError, ValueError) as exc:
        reason = f"unexpected answer: {type(exc).__name__}"
    record.logins.append(Login(time.monotonic() - started, reason))


async def _progress(label: str, record: Recorder, logins: int) -> None:
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL)
        failed = sum(login.reason is not None for login in record.logins)
        say(f"{label} {len(record.logins)}/{logins} logins ({failed} failed)…")


class Prober:
    """Asks ``GET url`` every 50 ms while the storm runs, whether or not earlier asks have been
    answered: a slow answer must not hold back the next ask, or slow stretches would be
    undersampled. Latency runs from when the ask was due. It runs its own event loop on a thread
    of its own, so that the users' loop, busy with a thousand of them, does not delay it."""

    def __init__(self, url: str, record: Recorder) -> None:
        self._url = url
        self._record = record
        self._stop = threading.Event()
        # A daemon: an interrupted run must not wait for a server that stopped answering.
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        self._stop.set()
        if exc_type is None:
            self._thread.join()  # asks in flight still count, up to their timeout

    def _run(self) -> None:
        asyncio.run(self._ask_every_interval())

    async def _ask_every_interval(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=4)
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            in_flight: set[asyncio.Task[None]] = set()
            due = time.monotonic()
            while not self._stop.is_set():
                task = asyncio.create_task(self._ask(http, due))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                due = max(due + PROBE_INTERVAL, time.monotonic())
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            if in_flight:
                await asyncio.wait(in_flight)

    async def _ask(self, http: aiohttp.ClientSession, due: float) -> None:
        try:
            async with http.get(self._url) as response:
                await response.read()
                ok = response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if ok:
            self._record.probes.append(time.monotonic() - due)
        else:
            self._record.probe_errors += 1


@dataclass(frozen=True)
class Percentiles:
    count: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def percentiles(seconds: list[float]) -> Percentiles:
    """Nearest-rank percentiles, in milliseconds."""
    if not seconds:
        return Percentiles(0, None, None, None)
    ordered = sorted(seconds)

    def rank(share: float) -> float:
        index = max(0, math.ceil(share * len(ordered)) - 1)
        return round(ordered[index] * 1000, 1)

    return Percentiles(len(ordered), rank(0.50), rank(0.99), round(ordered[-1] * 1000, 1))


@dataclass(frozen=True)
class StormFigures:
    logins: int
    succeeded: int
    failed: int
    failures: dict[str, int]
    wall_seconds: float
    logins_per_second: float
    login: Percentiles
    calls: Percentiles  # every call to the system under test but the long-polls
    long_polls: Percentiles
    calls_by_kind: dict[str, Percentiles]
    cheap: Percentiles
    cheap_errors: int  # asks that failed or were not answered within PROBE_TIMEOUT
    resent_gets: dict[str, int]


def storm_figures(result: StormResult) -> StormFigures:
    record = result.record
    failures = Counter(login.reason for login in record.logins if login.reason is not None)
    succeeded = len(record.logins) - failures.total()
    by_kind: dict[str, list[float]] = {}
    for call in record.calls:
        by_kind.setdefault(call.kind, []).append(call.seconds)
    return StormFigures(
        logins=len(record.logins),
        succeeded=succeeded,
        failed=failures.total(),
        failures=dict(failures.most_common()),
        wall_seconds=round(result.wall_seconds, 3),
        logins_per_second=round(succeeded / result.wall_seconds, 2) if result.wall_seconds else 0,
        login=percentiles([login.seconds for login in record.logins]),
        calls=percentiles([call.seconds for call in record.calls if not call.long_poll]),
        long_polls=percentiles([call.seconds for call in record.calls if call.long_poll]),
        calls_by_kind={kind: percentiles(values) for kind, values in sorted(by_kind.items())},
        cheap=percentiles(record.probes),
        cheap_errors=record.probe_errors,
        resent_gets=dict(record.resent),
    )
