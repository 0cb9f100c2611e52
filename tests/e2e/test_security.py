"""The security review's table, played by an attacker against the real processes: two tenants
with a key each, scopes, a huge body without a key, brute force with and without a user id and
in parallel, enumeration of enrolled phones, recovery codes, nasty inputs — and a dump of every
table and Redis key after the whole story, which must hold no phone number, IP or code.

Each test prints what it measured (``[chaos]`` lines, as the other real-process suites do)."""

from __future__ import annotations

import contextlib
import random
import re
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis as redis_py
from sqlalchemy import inspect, text

from shared.kit.crypto import DEVELOPMENT_DATA_KEY
from shared.kit.db.migrate import migration_engine
from tests.conftest import SESSION_PREFIX
from tests.e2e.conftest import System, running_system
from tests.support import random_phone

_OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


class Caller:
    """One login server's key, and what it gets back."""

    def __init__(self, system: System, key: str) -> None:
        self.http = httpx.Client(
            base_url=system.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=40
        )
        _OPEN.append(self.http)
        self.sandbox = system.sandbox

    def call(
        self, method: str, path: str, status: int | None = None, **kwargs: Any
    ) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        if status is not None:
            assert response.status_code == status, (
                f"{method} {path}: {response.status_code} {response.text}"
            )
        return response

    def json(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        return self.call(method, path, status, **kwargs).json()

    def pending(self, verification_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.json(
            "GET", f"/v1/verifications/{verification_id}", 200, params={"wait": 20}
        )
        assert body["status"] == "pending", body
        return body

    def check(self, verification_id: str, code: str) -> httpx.Response:
        return self.call(
            "POST",
            f"/v1/verifications/{verification_id}/checks",
            params={"wait": 20},
            json={"code": code},
        )

    def enrol(self, user: str, phone: str, **extra: Any) -> dict[str, Any]:
        """Enrol and approve a phone; returns the enrolment answer."""
        enrolled: dict[str, Any] = self.json(
            "POST", f"/v1/users/{user}/factors", 202, json={"phone": phone, **extra}
        )
        verification_id = enrolled["verification"]["id"]
        self.pending(verification_id)
        approved = self.check(verification_id, self.sandbox.latest_code(phone))
        assert approved.json()["status"] == "approved", approved.text
        return enrolled


def new_key(system: System, tenant: str, scopes: str = "verify,users,users:manage,admin") -> str:
    name = f"{tenant}-{uuid.uuid4().hex[:6]}"
    created = system.run("keys", "create", name, "--tenant", tenant, "--scopes", scopes)
    return created.splitlines()[-1]


def wrong_code(right: str) -> str:
    """A random wrong code (random, so that a dump cannot hold it by coincidence)."""
    while True:
        code = f"{random.randrange(10**6):06d}"
        if code != right:
            return code


def test_another_tenants_key_finds_nothing_and_changes_nothing(system: System, report: Any) -> None:
    a = Caller(system, system.api_key)
    b = Caller(system, new_key(system, f"tenant-b-{uuid.uuid4().hex[:6]}"))
    user, phone, other_phone = "42", random_phone(), random_phone()
    enrolled = a.enrol(user, phone)
    codes = a.json("POST", f"/v1/users/{user}/recovery-codes", 201)["codes"]
    verification = a.json("POST", "/v1/verifications", 202, json={"to": other_phone})
    a.pending(verification["id"])
    a_check = a.check(verification["id"], wrong_code(a.sandbox.latest_code(other_phone))).json()
    unknown = str(uuid.uuid4())
    v_path = f"/v1/verifications/{verification['id']}"
    probes: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", v_path, {}),
        ("POST", f"{v_path}/checks", {"json": {"code": a.sandbox.latest_code(other_phone)}}),
        ("POST", f"{v_path}/resend", {}),
        ("POST", f"{v_path}/cancel", {}),
        ("GET", f"{v_path}/checks/{a_check['id']}", {}),
        ("DELETE", f"/v1/users/{user}/factors/{enrolled['factor']['id']}", {}),
    ]
    answers = []
    for method, path, kwargs in probes:
        answer = b.call(method, path, **kwargs)
        as_unknown = b.call(method, path.replace(verification["id"], unknown), **kwargs)
        answers.append(answer.status_code)
        assert answer.status_code == 404 and answer.json()["code"] == "not_found", answer.text
        if verification["id"] in path:  # the same answer as for an id that never existed
            assert as_unknown.status_code == 404
            assert (
                answer.json()["detail"].replace(verification["id"], unknown)
                == (as_unknown.json()["detail"])
            )
    # B's user "42" is another user than A's.
    b_factors = b.json("GET", f"/v1/users/{user}/factors", 200)
    assert b_factors == {"user_id": user, "two_step_enabled": False, "factors": []}
    assert b.json("GET", f"/v1/users/{user}/events", 200)["events"] == []
    assert b.json("POST", f"/v1/users/{user}/challenges", 409)["code"] == "no_verified_factor"
    b.json("POST", f"/v1/users/{user}/recovery-codes", 201)  # B's own user's set
    # A's world is as A left it.
    assert a.json("GET", v_path, 200)["status"] == "pending"
    assert a.json("GET", v_path, 200)["check_attempts"] == 1
    assert a.json("GET", f"/v1/users/{user}/factors", 200)["two_step_enabled"] is True
    redeemed = a.json(
        "POST", f"/v1/users/{user}/recovery-codes/redeem", 200, json={"code": codes[0]}
    )
    assert redeemed == {"status": "approved"}
    a_events = [e["type"] for e in a.json("GET", f"/v1/users/{user}/events", 200)["events"]]
    assert "recovery_code.used" in a_events and "factor.disabled" not in a_events
    report(
        "tenant B's key against tenant A's rows",
        probes=len(probes),
        answers=answers,
        b_sees_user_42=b_factors["two_step_enabled"],
    )


def test_a_key_does_only_what_its_scopes_allow(system: System, report: Any) -> None:
    tenant = f"scoped-{uuid.uuid4().hex[:6]}"
    verify_only = Caller(system, new_key(system, tenant, "verify"))
    users_only = Caller(system, new_key(system, tenant, "users"))
    # What a login site holds: it manages its users' factors and recovery codes, and that is
    # all — no lockout released, no webhook, no metrics.
    login_site = Caller(system, new_key(system, tenant, "verify,users,users:manage"))
    factor_id = str(uuid.uuid4())
    refused = {
        "verify": [
            ("POST", "/v1/users/u/factors", {"json": {"phone": random_phone()}}),
            ("GET", "/v1/users/u/factors", {}),
            ("POST", "/v1/users/u/challenges", {}),
            ("POST", "/v1/users/u/recovery-codes/redeem", {"json": {"code": "ABCD-EFGH-JKMN"}}),
            ("GET", "/v1/users/u/events", {}),
        ],
        "users": [
            ("POST", "/v1/verifications", {"json": {"to": random_phone()}}),
            ("GET", f"/v1/verifications/{uuid.uuid4()}", {}),
            ("DELETE", f"/v1/users/u/factors/{factor_id}", {}),
            ("POST", "/v1/users/u/recovery-codes", {}),
            ("GET", "/v1/users/u/events", {}),
            ("POST", "/v1/lockouts/release", {"json": {"user_id": "u"}}),
            ("GET", "/metrics", {}),
        ],
        "login site": [
            ("POST", "/v1/lockouts/release", {"json": {"user_id": "u"}}),
            ("POST", "/v1/webhook-endpoints", {"json": {"url": "https://example.com/hook"}}),
            ("GET", "/v1/webhook-endpoints", {}),
            ("GET", "/metrics", {}),
        ],
    }
    callers = {"verify": verify_only, "users": users_only, "login site": login_site}
    for name, calls in refused.items():
        for method, path, kwargs in calls:
            answer = callers[name].call(method, path, 403, **kwargs)
            assert answer.json()["code"] == "insufficient_scope", (name, method, path)
    verify_only.json("POST", "/v1/verifications", 202, json={"to": random_phone()})
    assert users_only.json("GET", "/v1/users/u/factors", 200)["factors"] == []
    assert login_site.json("GET", "/v1/users/u/events", 200)["events"] == []
    assert len(login_site.json("POST", "/v1/users/u/recovery-codes", 201)["codes"]) == 10
    login_site.call("DELETE", f"/v1/users/u/factors/{factor_id}", 404)
    report("keys without the scope", refused=sum(len(c) for c in refused.values()), answers=403)


def _raw_request(port: int, head: bytes, body_chunks: list[bytes]) -> tuple[int, float]:
    """Send a request by hand, stop sending as soon as an answer comes; returns its status and
    the seconds it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        answer = b""
        for chunk in body_chunks:
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            if answer:
                break
            try:
                sock.sendall(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        while b"\r\n" not in answer:
            answer += sock.recv(65536)
    return int(answer.split(b" ", 2)[1]), time.monotonic() - started


def test_a_huge_body_is_refused_before_it_is_read_or_authenticated(
    system: System, report: Any
) -> None:
    port = int(system.api_url.rsplit(":", 1)[1])
    api = psutil.Process(system.processes["api"].pid)
    rss_before = api.memory_info().rss
    fifty_mb = 50 * 1024 * 1024
    declared = (
        b"POST /v1/verifications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {fifty_mb}\r\n\r\n".encode()
    )
    status_declared, seconds = _raw_request(port, declared, [b"{" + b" " * 65535] * 800)
    chunked = (
        b"POST /v1/verifications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b" " * 8192
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    status_streamed, streamed_seconds = _raw_request(port, chunked, [framed] * 6400)
    grown_mib = (api.memory_info().rss - rss_before) / 2**20
    report(
        "bodies over the cap, without a key",
        declared_50_mib=status_declared,
        declared_seconds=round(seconds, 3),
        streamed=status_streamed,
        streamed_seconds=round(streamed_seconds, 3),
        api_rss_growth_mib=round(grown_mib, 1),
    )
    assert status_declared == 413 and status_streamed == 413
    assert grown_mib < 20
    big = httpx.post(f"{system.api_url}/v1/verifications", content=b" " * 20_000)
    assert big.status_code == 413 and big.json()["code"] == "payload_too_large"


@pytest.fixture
def roomy_system(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[System]:
    """Sends to one number not capped at five: a test of lockouts makes up to eight
    verifications for one number, as many as the race it starts lets reach the provider."""
    with running_system(
        database_url,
        redis_url,
        tmp_path,
        settings={"TWOSTEP_LIMIT_PER_DESTINATION": "50 per 10 minutes"},
    ) as running:
        yield running


def test_parallel_wrong_codes_stop_at_the_limit_and_lock_the_number_without_a_user(
    roomy_system: System, report: Any
) -> None:
    system = roomy_system
    caller = Caller(system, system.api_key)
    phone = random_phone()
    verification = caller.json("POST", "/v1/verifications", 202, json={"to": phone})
    caller.pending(verification["id"])
    wrong = wrong_code(caller.sandbox.latest_code(phone))
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: caller.check(verification["id"], wrong), range(10)))
    statuses = sorted(answer.status_code for answer in answers)
    accepted = [a.json()["status"] for a in answers if a.status_code in (200, 202)]
    refused = {a.json()["code"] for a in answers if a.status_code == 429}
    # Five accepted (the lockout's step); those the provider never saw end without a guess.
    assert len(accepted) == 5, statuses
    assert set(accepted) <= {"rejected", "max_attempts_reached", "queued"}, accepted
    assert refused <= {"user_locked", "max_attempts_reached"}, refused
    # No user id anywhere: the number itself is locked out; a new verification to it is refused
    # before anything is sent.
    checks_until_locked, locked = 0, None
    while locked is None and checks_until_locked <= 5:
        again = caller.call("POST", "/v1/verifications", json={"to": phone})
        if again.status_code == 429:
            locked = again
            break
        assert again.status_code == 202, again.text
        caller.pending(again.json()["id"])
        answer = caller.check(again.json()["id"], wrong)
        if answer.status_code == 429:
            locked = answer
        else:
            assert answer.json()["status"] == "rejected", answer.text
            checks_until_locked += 1
    assert locked is not None, "the number was never locked out"
    assert (locked.json()["code"], locked.json()["limit"]) == ("user_locked", "destination_lockout")
    guessed = accepted.count("rejected") + checks_until_locked
    assert guessed == 5, "locked at exactly the fifth wrong code the provider saw"
    caller.call("POST", "/v1/lockouts/release", 204, json={"phone": phone})
    # Released, the number's checks are taken again: a verification that used up its checks was
    # ended at the provider too, so a new one is a fresh code with checks of its own. (Twilio's
    # own five sends per number in ten minutes are not what this test is about.)
    system.sandbox.advance_clock(601)
    fresh = caller.json("POST", "/v1/verifications", 202, json={"to": phone})
    caller.pending(fresh["id"])
    after_release = caller.check(fresh["id"], caller.sandbox.latest_code(phone))
    assert after_release.status_code == 200, after_release.text
    assert after_release.json()["status"] == "approved"
    report(
        "ten wrong codes at once on a verification without a user",
        answers=dict(sorted((s, statuses.count(s)) for s in set(statuses))),
        accepted=accepted,
        wrong_codes_before_the_number_locked=guessed,
        lock=f"{locked.status_code} {locked.json()['limit']}",
        after_admin_release=after_release.json()["status"],
    )


def test_nobody_learns_whose_phone_it_is(system: System, report: Any) -> None:
    caller = Caller(system, system.api_key)
    alice, phone = f"alice-{uuid.uuid4().hex[:6]}", random_phone()
    caller.enrol(alice, phone)
    answers = []
    for n in range(9):
        answer = caller.call(
            "POST", f"/v1/users/mallory-{n}-{alice}/factors", json={"phone": phone}
        )
        answers.append((answer.status_code, answer.json().get("code")))
    assert answers[:4] == [(202, None)] * 4, "an enrolled phone answers like any other"
    assert set(answers[4:]) == {(429, "rate_limited")}, "and probing it costs like sending"
    # Whoever holds the phone and types the code: the approval fails, generically.
    first = caller.json("GET", f"/v1/users/mallory-0-{alice}/factors", 200)["factors"][0]
    assert first["status"] in ("unverified", "disabled")
    probe_user = f"probe-{uuid.uuid4().hex[:6]}"
    challenges = [
        caller.call("POST", f"/v1/users/{probe_user}/challenges").status_code for _ in range(11)
    ]
    assert challenges == [409] * 10 + [429], challenges
    report(
        "nine enrolments of an enrolled phone, eleven challenges of a user without 2SA",
        enrolments=[status for status, _ in answers],
        challenges=challenges,
    )


def test_an_enrolment_of_another_users_phone_fails_at_approval(system: System) -> None:
    caller = Caller(system, system.api_key)
    alice, mallory, phone = f"a-{uuid.uuid4().hex[:6]}", f"m-{uuid.uuid4().hex[:6]}", random_phone()
    caller.enrol(alice, phone)
    caller.enrol(mallory, phone)
    listed = caller.json("GET", f"/v1/users/{mallory}/factors", 200)
    assert listed["two_step_enabled"] is False
    # The login server's owner sees why (its end user is to be told only "cannot be used").
    assert [(f["status"], f["disabled_reason"]) for f in listed["factors"]] == [
        ("disabled", "in_use")
    ]
    assert caller.json("GET", f"/v1/users/{alice}/factors", 200)["two_step_enabled"] is True
    events = caller.json("GET", f"/v1/users/{mallory}/events", 200)["events"]
    assert events[0]["type"] == "factor.enrollment_failed"
    assert events[0]["detail"]["reason"] == "phone_in_use"
    refused = caller.json("POST", f"/v1/users/{mallory}/challenges", 409)
    assert refused["code"] == "no_verified_factor" and "disabled_reason" in refused["detail"]


def test_recovery_codes_cost_one_hash_per_try_and_are_rate_limited(
    system: System, report: Any
) -> None:
    caller = Caller(system, system.api_key)
    with_codes, without = f"codes-{uuid.uuid4().hex[:6]}", f"none-{uuid.uuid4().hex[:6]}"
    answer = caller.call("POST", f"/v1/users/{with_codes}/recovery-codes", 201)
    assert answer.headers["cache-control"] == "no-store"
    codes = answer.json()["codes"]

    def timed(user: str, code: str) -> float:
        started = time.monotonic()
        redeemed = caller.json(
            "POST", f"/v1/users/{user}/recovery-codes/redeem", 200, json={"code": code}
        )
        assert redeemed == {"status": "rejected"}
        return time.monotonic() - started

    guess = "ZZZZ-ZZZZ-ZZZZ"
    # The same selector as a real code, a wrong verifier: exactly one hash, as for no code.
    near = codes[0][:5] + "ZZZZ-ZZZZ"
    seconds_with = [timed(with_codes, near) for _ in range(2)] + [timed(with_codes, guess)]
    seconds_without = [timed(without, guess) for _ in range(3)]
    ratio = statistics.median(seconds_with) / statistics.median(seconds_without)
    sets = [
        caller.call("POST", f"/v1/users/{with_codes}/recovery-codes").status_code for _ in range(5)
    ]
    report(
        "recovery-code redemptions and new sets",
        median_ms_with_codes=round(statistics.median(seconds_with) * 1000, 1),
        median_ms_without=round(statistics.median(seconds_without) * 1000, 1),
        ratio=round(ratio, 2),
        more_sets=sets,
    )
    assert max(seconds_with + seconds_without) < 1.0
    assert 0.33 < ratio < 3
    assert sets == [201, 201, 201, 201, 429], "five sets a day, then 429"


def test_nasty_inputs_get_a_4xx_and_small_leaks_are_closed(system: System) -> None:
    caller = Caller(system, system.api_key)
    user = "u-" + uuid.uuid4().hex[:6]
    problem = caller.json(
        "GET", f"/v1/users/{user}/events", 422, params={"before": "9223372036854775808"}
    )
    assert problem["code"] == "invalid_request"
    for nasty in ("nul\x00", "new\nline", "\u202eevil", "tab\t", ""):
        answer = caller.json(
            "POST", "/v1/verifications", 422, json={"to": random_phone(), "user_id": nasty}
        )
        assert answer["code"] == "invalid_request", nasty
    assert caller.call("GET", "/v1/users/new%0Aline/factors").status_code == 422
    anonymous = httpx.Client(base_url=system.api_url, timeout=10)
    assert anonymous.get("/metrics").status_code == 401
    assert anonymous.get("/openapi.json").status_code == 401
    assert anonymous.get("/docs").status_code == 404
    assert caller.call("GET", "/openapi.json", 200).json()["info"]["title"] == "twostep"
    verification = caller.json("POST", "/v1/verifications", 202, json={"to": random_phone()})
    assert (
        caller.call("GET", f"/v1/verifications/{verification['id']}").headers["cache-control"]
        == "no-store"
    )


def test_a_dump_after_the_whole_story_holds_no_phone_ip_or_code(
    system: System, report: Any
) -> None:
    caller = Caller(system, system.api_key)
    user, phone, ip = f"dump-{uuid.uuid4().hex[:6]}", random_phone(), "203.0.113.77"
    caller.enrol(user, phone, client_ip=ip)
    typed = [system.sandbox.latest_code(phone)]
    login = caller.json("POST", f"/v1/users/{user}/challenges", 202, json={"client_ip": ip})
    caller.pending(login["id"])
    code = system.sandbox.latest_code(phone)
    typed += [wrong_code(code), code]
    assert caller.check(login["id"], wrong_code(code)).json()["status"] == "rejected"
    assert caller.check(login["id"], code).json()["status"] == "approved"
    recovery = caller.json("POST", f"/v1/users/{user}/recovery-codes", 201)["codes"]
    caller.json("POST", f"/v1/users/{user}/recovery-codes/redeem", 200, json={"code": recovery[0]})
    other = random_phone()
    standalone = caller.json(
        "POST", "/v1/verifications", 202, json={"to": other, "client_ip": ip, "user_id": user}
    )
    caller.pending(standalone["id"])

    database = _dump_database(system.env["TWOSTEP_DATABASE_URL"])
    redis_dump = _dump_redis(system.env["TWOSTEP_REDIS_URL"])
    secrets = {
        "phone": [phone, phone[1:], other, other[1:]],
        "ip": [ip],
        "code": [c for c in typed if c] + [c.replace("-", "") for c in recovery] + recovery,
    }
    found = {
        kind: [value for value in values if _contains(database + redis_dump, value)]
        for kind, values in secrets.items()
    }
    report(
        "a dump of every table and Redis key after the story",
        database_characters=len(database),
        redis_characters=len(redis_dump),
        found=found,
    )
    assert len(database) > 1000 and len(redis_dump) > 100, "the dump is not empty"
    assert found == {"phone": [], "ip": [], "code": []}


def _contains(dump: str, value: str) -> bool:
    if value.isdigit():  # a code: as a number of its own, not inside a longer one
        return re.search(rf"(?<!\d){re.escape(value)}(?!\d)", dump) is not None
    return value in dump


def _dump_database(url: str) -> str:
    engine = migration_engine(url)
    try:
        with engine.connect() as connection:
            parts = []
            for table in inspect(connection).get_table_names():
                rows = connection.execute(text(f'SELECT * FROM "{table}"'))  # noqa: S608
                parts += [repr(tuple(row)) for row in rows]
            return "\n".join(parts)
    finally:
        engine.dispose()


def _value_of(client: redis_py.Redis, key: str) -> object:
    kind = str(client.type(key))
    if kind == "string":
        return client.get(key)
    if kind == "list":
        return client.lrange(key, 0, -1)
    if kind == "hash":
        return client.hgetall(key)
    if kind == "set":
        return client.smembers(key)
    if kind == "zset":
        return client.zrange(key, 0, -1, withscores=True)
    return kind


def _dump_redis(url: str) -> str:
    client = redis_py.Redis.from_url(url, decode_responses=True)
    parts = []
    try:
        for key in client.scan_iter(match=f"{SESSION_PREFIX}*", count=1000):
            parts.append(f"{key!r} {_value_of(client, key)!r}")
    finally:
        client.close()
    return "\n".join(parts)


def _refused(argv: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, *argv], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_misconfigured_processes_refuse_to_start(system: System, report: Any) -> None:
    real_twilio = {
        "TWILIO_ACCOUNT_SID": "AC" + "5" * 32,
        "TWILIO_AUTH_TOKEN": "a-real-looking-auth-token",
        "TWILIO_VERIFY_SERVICE_SID": "VA" + "5" * 32,
    }
    with_both = {**system.env, **real_twilio}  # and the suite's TWOSTEP_TWILIO_BASE_URL
    told = {
        "twostep worker": _refused(["-m", "twostep.cli", "worker"], with_both),
        "celery worker": _refused(
            ["-m", "celery", "-A", "workers.app", "worker", "--pool=solo"], with_both
        ),
        "api without an allow-list": _refused(
            ["-m", "twostep.cli", "api"],
            {k: v for k, v in system.env.items() if k != "TWOSTEP_ALLOWED_COUNTRIES"},
        ),
        "api with development keys": _refused(
            ["-m", "twostep.cli", "api"], {**system.env, "TWOSTEP_DATA_KEYS": DEVELOPMENT_DATA_KEY}
        ),
    }
    assert "both set" in told["twostep worker"] and "both set" in told["celery worker"]
    assert "TWOSTEP_ALLOWED_COUNTRIES" in told["api without an allow-list"]
    assert "public development key" in told["api with development keys"]
    for output in told.values():
        assert real_twilio["TWILIO_AUTH_TOKEN"] not in output
    report("misconfigured processes", refused=sorted(told))
