"""Two identical requests racing with one Idempotency-Key: one effect, one answer."""

from __future__ import annotations

import asyncio

import httpx

from tests.support import random_phone


async def test_racing_repeats_create_one_verification(api: httpx.AsyncClient) -> None:
    body = {"to": random_phone()}
    headers = {"Idempotency-Key": f"race-{body['to']}"}
    answers = await asyncio.gather(
        *(api.post("/v1/verifications", json=body, headers=headers) for _ in range(6))
    )
    assert [answer.status_code for answer in answers] == [202] * 6
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert sum("idempotent-replayed" not in answer.headers for answer in answers) == 1
