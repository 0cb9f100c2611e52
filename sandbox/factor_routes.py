"""The Factors API's routes (``sandbox.factors`` holds the rules): an entity's TOTP factors and
their challenges, in Twilio's paths and answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.requests import Request

from sandbox.factors import Challenge, Factor, Factors, binding_uri, challenge_json, factor_json
from sandbox.services import Service

Params = dict[str, str]
Answer = tuple[int, dict[str, Any] | None]
Handler = Callable[[Request, Params], Awaitable[Answer]]


class _Sandbox(Protocol):
    def _service(self, request: Request, params: Params) -> Service: ...


class FactorRoutes:
    def __init__(self, sandbox: _Sandbox, factors: Factors) -> None:
        self._sandbox = sandbox
        self._factors = factors

    def routes(self) -> list[tuple[str, str, str, Handler]]:
        entity = "/v2/Services/{service_sid}/Entities/{identity}"
        factor, challenge = f"{entity}/Factors/{{sid}}", f"{entity}/Challenges/{{sid}}"
        return [
            (f"{entity}/Challenges", "POST", "CreateChallenge", self.create_challenge),
            (challenge, "POST", "UpdateChallenge", self.update_challenge),
            (challenge, "GET", "FetchChallenge", self.fetch_challenge),
            (f"{entity}/Factors", "POST", "CreateNewFactor", self.create_factor),
            (factor, "POST", "UpdateFactor", self.update_factor),
            (factor, "GET", "FetchFactor", self.fetch_factor),
            (factor, "DELETE", "DeleteFactor", self.delete_factor),
        ]

    async def create_factor(self, request: Request, params: Params) -> Answer:
        service = self._sandbox._service(request, params)
        created = self._factors.create(service, params["identity"], params)
        return 201, factor_json(created, _base(request), binding=binding_uri(created, service))

    async def update_factor(self, request: Request, params: Params) -> Answer:
        factor = self._factors.verify(self._factor(request, params), params.get("AuthPayload"))
        return 200, factor_json(factor, _base(request))

    async def fetch_factor(self, request: Request, params: Params) -> Answer:
        return 200, factor_json(self._factor(request, params), _base(request))

    async def delete_factor(self, request: Request, params: Params) -> Answer:
        self._factors.delete(self._factor(request, params))
        return 204, None

    async def create_challenge(self, request: Request, params: Params) -> Answer:
        service = self._sandbox._service(request, params)
        challenge = self._factors.challenge(service, params["identity"], params)
        return 201, challenge_json(challenge, _base(request))

    async def update_challenge(self, request: Request, params: Params) -> Answer:
        challenge = self._factors.respond(
            self._challenge(request, params), params.get("AuthPayload")
        )
        return 200, challenge_json(challenge, _base(request))

    async def fetch_challenge(self, request: Request, params: Params) -> Answer:
        return 200, challenge_json(self._challenge(request, params), _base(request))

    def _factor(self, request: Request, params: Params) -> Factor:
        service = self._sandbox._service(request, params)
        resource = _resource(request)
        return self._factors.factor(service, params["identity"], params["sid"], resource)

    def _challenge(self, request: Request, params: Params) -> Challenge:
        service = self._sandbox._service(request, params)
        resource = _resource(request)
        return self._factors.find_challenge(service, params["identity"], params["sid"], resource)


def _resource(request: Request) -> str:
    return str(request.scope["path"]).removeprefix("/v2")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")
