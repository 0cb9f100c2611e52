"""The way in that the READMEs show, played for real against the processes: the curl flow pasted
into bash as it stands in README.md, and the client's example scripts run as
clients/python/README.md shows them. Each fails when what a newcomer copies stops working."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import System, running_system
from tests.support import REPO, random_phone
from twostep.dev import DevOptions

CLIENT = REPO / "clients" / "python"
EXAMPLES = CLIENT / "examples"


@pytest.fixture(scope="module")
def readme_system(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    with running_system(database_url, redis_url, tmp_path_factory.mktemp("readme")) as system:
        yield system


def curl_flow() -> str:
    """The ``sh`` block under "## The flow, with curl" in README.md, as a reader copies it."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## The flow, with curl\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, "the flow is one block to paste"
    return str(blocks[0])


def with_value(block: str, name: str, value: str) -> str:
    """The block with the reader's ``NAME=…`` (set once, as the README asks them to) replaced by
    the running system's."""
    lines, count = [], 0
    for line in block.splitlines(keepends=True):
        code, mark, comment = line.partition("#")  # what the comments say is not run
        code, found = re.subn(
            rf"(?<![\w$]){name}=(?:\$\([^)]*\)|\S+)", lambda _: f"{name}={value}", code
        )
        lines.append(code + mark + comment)
        count += found
    assert count == 1, f"the README's flow must set {name} once, as {name}=…:\n{block}"
    return "".join(lines)


def needs_curl() -> None:
    if shutil.which("curl") is None:
        reason = "curl is not installed: the README's flow is played with it"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must play it")
        pytest.skip(reason)


def dev_key_file(directory: Path, key: str) -> None:
    """The key where ``twostep dev`` keeps it, under ``directory`` (a clone's root)."""
    kept = directory / DevOptions().data_dir / "dev-api-key"
    kept.parent.mkdir(exist_ok=True)
    kept.write_text(key + "\n")


def test_the_readme_reads_the_key_where_twostep_dev_keeps_it() -> None:
    assert f"KEY=$(cat {DevOptions().data_dir}/dev-api-key)" in curl_flow()


def test_the_readme_curl_flow_pasted_into_bash_ends_approved(
    readme_system: System, tmp_path: Path
) -> None:
    needs_curl()
    block = curl_flow()
    # What the README shows as the output of its commands: a comment of one word.
    shown = re.findall(r"^# (\w+)$", block, re.MULTILINE)
    assert shown[-1:] == ["approved"], shown
    dev_key_file(tmp_path, readme_system.api_key)  # read by the block's own KEY line
    for name, value in [
        ("API", readme_system.api_url),
        ("SANDBOX", readme_system.sandbox_url),
        ("TO", random_phone()),  # a number of its own: the suite's limits are per number
    ]:
        block = with_value(block, name, value)
    # Pasted twice for one number: the second run reads the newer code from the inbox.
    for _ in range(2):
        result = subprocess.run(
            ["bash", "-euo", "pipefail"],  # the reader's bash, stopping at the first failure
            input=block,
            cwd=tmp_path,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        said = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
        said += f"logs:\n{readme_system.logs()[-3000:]}"
        assert result.returncode == 0, said
        assert result.stdout.split() == shown, said


def test_the_client_readme_shows_its_example_scripts_as_they_are() -> None:
    readme = (CLIENT / "README.md").read_text()
    shown = re.findall(r"^```python\n(.*?)^```$", readme, re.MULTILINE | re.DOTALL)
    scripts = sorted(EXAMPLES.glob("*.py"))
    assert [path.name for path in scripts] == ["quickstart.py", "two_step.py"]
    assert sorted(shown) == sorted(path.read_text() for path in scripts)
    for path in scripts:
        assert f"](examples/{path.name})" in readme, path.name


def run_example(
    system: System, tmp_path: Path, name: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """``.venv/bin/python clients/python/examples/NAME ARGS`` with the URLs it reads set to the
    running system's, and its key where ``twostep dev`` keeps it (the example's default)."""
    dev_key_file(tmp_path, system.api_key)
    environment = {
        **_environment(),
        "TWOSTEP_URL": system.api_url,
        "TWOSTEP_SANDBOX_URL": system.sandbox_url,
    }
    environment.pop("TWOSTEP_API_KEY", None)
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_client_quickstart_runs_to_an_approved_check(
    readme_system: System, tmp_path: Path
) -> None:
    result = run_example(readme_system, tmp_path, "quickstart.py", random_phone())
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"verification [0-9a-f-]{36} pending", lines[0]), lines
    assert lines[-1] == "check approved", lines


def test_the_client_two_step_example_enrols_and_logs_in_and_refuses_a_phone_in_use(
    readme_system: System, tmp_path: Path
) -> None:
    phone, user, other = (
        random_phone(),
        f"readme-{uuid.uuid4().hex[:8]}",
        f"readme-{uuid.uuid4().hex[:8]}",
    )
    result = run_example(readme_system, tmp_path, "two_step.py", user, phone)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [f"two-step on for {user}", "login approved"]

    # The same phone for another user of the tenant: enrolled, approved, and still off.
    result = run_example(readme_system, tmp_path, "two_step.py", other, phone)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == f"two-step is still off for {other}: this phone cannot be used"


def _environment() -> dict[str, str]:
    """The suite's environment, with this Python's ``bin`` first on PATH (its python3)."""
    environment = dict(os.environ)
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    return environment
