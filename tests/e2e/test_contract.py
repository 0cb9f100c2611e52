"""The API against its own OpenAPI document, fuzzed by schemathesis over HTTP: the real API,
worker and sandbox processes. No 5xx; every answer's status, content type, headers and body
as the document says. Bounded in time; the cases it found worth keeping are regular tests in
``tests/unit/test_api.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import System, running_system
from tests.support import fresh_database

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "positive_data_acceptance",
)


def run_schemathesis(system: System, report_dir: Path) -> subprocess.CompletedProcess[str]:
    options = {
        "--header": f"Authorization: Bearer {system.api_key}",
        "--checks": ",".join(CHECKS),
        # A few thousand cases per database, within a minute; the same cases every run.
        "--max-examples": "40",
        "--max-time": "60",
        "--seed": "20261202",
        # One thread: hypothesis parses its filters' source while generating, and CPython 3.11
        # before 3.11.8 races on the AST constructor's recursion depth across threads
        # (gh-106905: "SystemError: AST constructor recursion depth mismatch" on a busy box).
        "--workers": "1",
        "--request-timeout": "35",
        "--report": "ndjson",
        "--report-dir": str(report_dir),
        "--suppress-health-check": "all",
    }
    argv = [arg for option in options.items() for arg in option]
    schema = f"{system.api_url}/openapi.json"
    return subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", schema, *argv, "--no-color"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=report_dir,  # its cache of crashes stays with the run, out of the repository
        # Two refusals of schema-valid requests that are right: see the hooks' docstring.
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
    )


@pytest.fixture
def fuzzed_system(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[System]:
    """A database and Redis keys of its own: the fuzzer's thousands of odd rows (user ids of
    zeros, …) must not meet the other tests' greps."""
    prefix = f"fuzz-{uuid.uuid4().hex[:8]}:"
    with (
        fresh_database(database_url, tmp_path) as own,
        running_system(own, redis_url, tmp_path, key_prefix=prefix) as running,
    ):
        yield running


def test_the_api_keeps_to_its_openapi_document(
    fuzzed_system: System, tmp_path: Path, report: Any
) -> None:
    result = run_schemathesis(fuzzed_system, tmp_path)
    (tmp_path / "schemathesis.log").write_text(result.stdout + result.stderr)
    cases, by_status = _cases(tmp_path)
    report(
        "schemathesis against the API",
        cases=cases,
        server_errors=sum(n for status, n in by_status.items() if status >= 500),
        answers=dict(sorted(by_status.items())),
        exit_code=result.returncode,
    )
    assert cases > 200, result.stdout[-3000:]
    assert not [status for status in by_status if status >= 500], by_status
    assert result.returncode == 0, result.stdout[-6000:]


def _cases(report_dir: Path) -> tuple[int, dict[int, int]]:
    """How many requests were made and their statuses, from the ndjson report."""
    by_status: dict[int, int] = {}
    for path in report_dir.glob("*.ndjson"):
        for line in path.read_text().splitlines():
            _collect_statuses(json.loads(line), by_status)
    return sum(by_status.values()), by_status


def _collect_statuses(node: Any, by_status: dict[int, int]) -> None:
    if isinstance(node, dict):
        response = node.get("response")
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            status = response["status_code"]
            by_status[status] = by_status.get(status, 0) + 1
        for value in node.values():
            _collect_statuses(value, by_status)
    elif isinstance(node, list):
        for value in node:
            _collect_statuses(value, by_status)
