"""Two identical requests racing with one Idempotency-Key: one effect, one answer."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from api.app import create_app
from shared.settings import Settings
from tests.support import ThreadedServer, random_phone


@pytest.fixture
def api_url(settings: Settings) -> Iterator[str]:
    server = ThreadedServer(create_app(settings)).start()
    yield server.url
    server.stop()


def test_racing_repeats_create_one_verification(api_url: str, api_key: str) -> None:
    body = {"to": random_phone()}
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": f"race-{body['to']}"}
    barrier = threading.Barrier(6)
    answers: list[httpx.Response] = []

    def post() -> None:
        barrier.wait()
        answers.append(
            httpx.post(f"{api_url}/v1/verifications", json=body, headers=headers, timeout=30)
        )

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer.status_code for answer in answers] == [202] * 6
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert sum("idempotent-replayed" not in answer.headers for answer in answers) == 1
