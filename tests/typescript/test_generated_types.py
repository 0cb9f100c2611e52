"""The OpenAPI document generates exact TypeScript types, as a login server in TypeScript would
make them (openapi-typescript for openapi-fetch, and @hey-api/openapi-ts's client): tsc
type-checks ``login_server.ts`` and ``hey_login_server.ts`` — what must compile does, and each
mistake marked ``@ts-expect-error`` is caught — and every request body the README and the docs
show with curl, against the route it is sent to."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from shared.kit.settings import Settings
from tests.support import node_packages

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GENERATED = HERE / "generated"
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.fixture(scope="module")
def toolchain() -> Path:
    """openapi-typescript, openapi-fetch and TypeScript, as package-lock.json pins them."""
    return node_packages(HERE, ".bin/tsc", "the TypeScript types check") / ".bin"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    settings = Settings(environment="development", allowed_countries="US")
    return create_app(settings).openapi()


def test_a_login_server_on_hey_apis_client_type_checks(
    toolchain: Path, document: dict[str, Any]
) -> None:
    GENERATED.mkdir(exist_ok=True)
    (GENERATED / "openapi.json").write_text(json.dumps(document))
    generated = _run(toolchain / "openapi-ts", "-i", "openapi.json", "-o", "hey")
    assert generated.returncode == 0, generated.stdout + generated.stderr
    finished = _run(toolchain / "tsc", "-p", "../tsconfig.hey.json")
    assert finished.returncode == 0, finished.stdout + finished.stderr


def test_a_typescript_login_server_and_the_docs_bodies_type_check(
    toolchain: Path, document: dict[str, Any]
) -> None:
    bodies = list(_documented_bodies(document))
    routes = {(method, path) for method, path, _body, _where in bodies}
    # The README's flow and the enrolment guide, at least: a check that found nothing checks
    # nothing.
    assert {
        ("post", "/v1/verifications"),
        ("post", "/v1/verifications/{verification_id}/checks"),
        ("post", "/v1/users/{user_id}/factors"),
    } <= routes, routes
    lines = []
    for n, (method, path, body, where) in enumerate(bodies):
        lines.append(f"// {where}")
        lines.append(f'export const body{n}: Body<"{path}", "{method}"> = {json.dumps(body)};')
    finished = _type_check(toolchain, document, lines)
    assert finished.returncode == 0, finished.stdout + finished.stderr


def test_a_wrong_body_in_the_docs_would_be_caught(
    toolchain: Path, document: dict[str, Any]
) -> None:
    """The check can fail: a body the API refuses does not type-check."""
    wrong = 'export const wrong: Body<"/v1/verifications", "post"> = {"phone": "+14155550123"};'
    finished = _type_check(toolchain, document, [wrong])
    assert finished.returncode != 0 and "bodies.ts" in finished.stdout, finished.stdout


def _type_check(
    toolchain: Path, document: dict[str, Any], bodies: list[str]
) -> subprocess.CompletedProcess[str]:
    """Generate the types from ``document``, then tsc over login_server.ts and ``bodies``."""
    GENERATED.mkdir(exist_ok=True)
    (GENERATED / "openapi.json").write_text(json.dumps(document))
    generated = _run(toolchain / "openapi-typescript", "openapi.json", "-o", "api.d.ts")
    assert generated.returncode == 0, generated.stdout + generated.stderr
    header = 'import type { Body } from "../login_server";\n'
    (GENERATED / "bodies.ts").write_text(header + "\n".join(bodies) + "\n")
    (GENERATED / "tsconfig.json").write_text(
        json.dumps({"extends": "../tsconfig.json", "include": ["../login_server.ts", "*.ts"]})
    )
    return _run(toolchain / "tsc", "-p", "tsconfig.json")


def _run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=GENERATED,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


_CURL = re.compile(r"^\s*(?:\w+=\$\()?curl\b")
_SHELL_VARIABLE = re.compile(r"\$\{?\w+\}?")
_OTHER_DATA = ("--data", "--data-raw", "--data-binary", "--json", "--form", "-F")


def _documented_bodies(document: dict[str, Any]) -> Any:
    """(method, path template, body, where) for each curl with a JSON body to a /v1 route."""
    for markdown in DOCUMENTS:
        for line, command in _commands(markdown.read_text()):
            if not _CURL.match(command):
                continue
            arguments = _words(command)
            where = f"{markdown.relative_to(REPO)}:{line}"
            assert not set(_OTHER_DATA) & set(arguments), f"{where}: a body is sent with -d"
            if "-d" not in arguments or not any("/v1/" in word for word in arguments):
                continue
            url = next(word for word in arguments if "/v1/" in word)
            method = arguments[arguments.index("-X") + 1] if "-X" in arguments else "POST"
            body = json.loads(_SHELL_VARIABLE.sub("x", arguments[arguments.index("-d") + 1]))
            path = _template(document, url)
            assert path is not None, f"{where}: {url} is no route of the document"
            yield method.lower(), path, body, where


def _commands(text: str) -> Iterator[tuple[int, str]]:
    """Each line of ``text`` with the lines a trailing backslash continues it with, and the
    number of its first line."""
    lines = text.splitlines()
    n = 0
    while n < len(lines):
        first, command = n + 1, lines[n]
        while command.endswith("\\") and n + 1 < len(lines):
            n += 1
            command = command[:-1] + " " + lines[n]
        yield first, command
        n += 1


def _words(command: str) -> list[str]:
    return shlex.split(command.rstrip(")"), comments=True)


def _template(document: dict[str, Any], url: str) -> str | None:
    """The document's path a URL of the docs is sent to (ids in them are placeholders)."""
    path = "/v1/" + url.split("/v1/", 1)[1].split("?", 1)[0].rstrip(")")
    parts = path.strip("/").split("/")
    for template in document["paths"]:
        pattern = template.strip("/").split("/")
        if len(pattern) == len(parts) and all(
            want.startswith("{") or want == got for want, got in zip(pattern, parts, strict=True)
        ):
            return str(template)
    return None
