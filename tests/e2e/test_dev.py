"""``twostep dev``: one command brings the whole system up, prints what you need, and Ctrl-C
takes all of it down again; with ``--example``, the reference login site too."""

from __future__ import annotations

import contextlib
import importlib.util
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from sandbox.app import DEFAULT_ACCOUNT_SID
from shared.kit.settings import SANDBOX_SERVICE_SID
from tests.support import REPO, SandboxClient, base_env, free_port, random_phone, wait_until
from twostep import dev

# The embedded Redis is what a machine without Redis gets; a redis-server is used where found.
REDIS_KINDS = ["embedded"] + (["redis-server"] if shutil.which("redis-server") else [])


@dataclass(frozen=True)
class Dev:
    banner: str
    children: list[psutil.Process]

    def url(self, name: str) -> str:
        found = re.search(rf"{name}\s+(http://(?:127\.0\.0\.1|localhost):\d+)", self.banner)
        assert found, self.banner
        return found.group(1)


@contextlib.contextmanager
def twostep_dev(tmp_path: Path, env: dict[str, str], *options: str) -> Iterator[Dev]:
    """``twostep dev`` until its banner; then Ctrl-C, and nothing of it may be left running."""
    output: list[str] = []
    process = subprocess.Popen(
        [sys.executable, "-m", "twostep.cli", "dev", "--data-dir", str(tmp_path / "data"),
         "--api-port", str(free_port()), "--sandbox-port", str(free_port()), *options],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    stdout = process.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: output.extend(iter(stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_until(
            lambda: "twostep is running" in "".join(output) or process.poll() is not None,
            timeout=90,
            what="the dev banner",
        )
        assert process.poll() is None, "".join(output)
        children = psutil.Process(process.pid).children(recursive=True)
        yield Dev("".join(output), children)
    finally:
        returncode = _interrupt(process)
    assert returncode == 0, "".join(output)[-3000:]

    # A zombie (exited, not yet reaped by whoever inherited it) counts as gone.
    def still_running() -> list[psutil.Process]:
        return [child for child in children if _alive(child)]

    with contextlib.suppress(AssertionError):
        wait_until(lambda: not still_running(), timeout=10, what="dev's processes to exit")
    assert still_running() == [], f"left behind: {still_running()}"
    assert "stopped" in "".join(output)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _interrupt(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


@pytest.mark.slow
@pytest.mark.parametrize("redis", REDIS_KINDS)
def test_dev_runs_the_flow_and_stops_cleanly(redis: str, tmp_path: Path) -> None:
    env = base_env()
    if redis == "embedded":
        env["PATH"] = str(tmp_path / "empty-bin")  # no redis-server to be found
    with twostep_dev(tmp_path, env) as running:
        api, sandbox = running.url("API"), running.url("sandbox")
        key = re.search(r"API key\s+(tsk_\S+)", running.banner)
        assert key, running.banner
        assert ("embedded Redis" in running.banner) == (redis == "embedded")
        assert "login site not started" in running.banner
        assert len(running.children) >= 5  # redis, sandbox, api, worker, beat

        headers = {"Authorization": f"Bearer {key.group(1)}"}
        to = random_phone()
        created = httpx.post(f"{api}/v1/verifications", json={"to": to}, headers=headers)
        assert created.status_code == 202
        path = f"{api}/v1/verifications/{created.json()['id']}"

        def status() -> str:
            return str(httpx.get(path, headers=headers).json()["status"])

        wait_until(lambda: status() == "pending", timeout=20, what="pending")
        with SandboxClient(sandbox) as sandbox_client:
            code = sandbox_client.latest_code(to)
        check = httpx.post(f"{path}/checks", json={"code": code}, headers=headers)
        assert check.status_code == 202
        wait_until(lambda: status() == "approved", timeout=20, what="approved")


@pytest.mark.slow
def test_dev_example_serves_the_login_site(tmp_path: Path) -> None:
    port = str(free_port())
    with twostep_dev(tmp_path, base_env(), "--example", "--example-port", port) as running:
        site = running.url("login site")
        # Opened as localhost: browsers take passkeys from a domain, never from an address.
        assert site == f"http://localhost:{port}"
        assert len(running.children) >= 6  # the login site besides the five
        page = httpx.get(f"{site}/login")
        assert page.status_code == 200
        assert "<h1>Sign in</h1>" in page.text and 'name="csrf_token"' in page.text
        # It is a client of this API, with the dev key: the site's data sits beside twostep's.
        assert (tmp_path / "data" / "login-site.db").exists()
        # Its passkeys' relying party is set on the sandbox's service.
        service = httpx.get(
            f"{running.url('sandbox')}/v2/Services/{SANDBOX_SERVICE_SID}",
            auth=(DEFAULT_ACCOUNT_SID, "sandbox"),
        ).json()
        assert service["passkeys"]["relying_party"]["origins"] == [site]


def test_dev_example_says_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert dev.example_site_problem() is None  # this checkout has the site and what it needs

    monkeypatch.setattr(dev, "_REPOSITORY", tmp_path)  # twostep installed without its repository
    problem = dev.example_site_problem()
    assert problem and "not at" in problem and "from a clone" in problem

    monkeypatch.setattr(dev, "_REPOSITORY", REPO)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "jinja2" else real_find_spec(name, *args),
    )
    problem = dev.example_site_problem()
    assert problem and "jinja2" in problem and "twostep_client" not in problem
    assert ".venv/bin/pip install -c constraints.txt -e '.[example]' -e ./clients/python" in problem
