"""``twostep dev``: one command brings the whole system up, prints what you need, and Ctrl-C
takes all of it down again."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support import REPO, SandboxClient, base_env, free_port, random_phone, wait_until

# The embedded Redis is what a machine without Redis gets; a redis-server is used where found.
REDIS_KINDS = ["embedded"] + (["redis-server"] if shutil.which("redis-server") else [])


@pytest.mark.slow
@pytest.mark.parametrize("redis", REDIS_KINDS)
def test_dev_runs_the_flow_and_stops_cleanly(redis: str, tmp_path: Path) -> None:
    env = base_env()
    if redis == "embedded":
        env["PATH"] = str(tmp_path / "empty-bin")  # no redis-server to be found
    output: list[str] = []
    process = subprocess.Popen(
        [sys.executable, "-m", "twostep.cli", "dev", "--data-dir", str(tmp_path / "data"),
         "--api-port", str(free_port()), "--sandbox-port", str(free_port())],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    stdout = process.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: output.extend(iter(stdout.readline, "")), daemon=True)
    reader.start()

    def text() -> str:
        return "".join(output)

    try:
        wait_until(
            lambda: "twostep is running" in text() or process.poll() is not None,
            timeout=90,
            what="the dev banner",
        )
        assert process.poll() is None, text()
        banner = text()
        api = re.search(r"API\s+(http://127\.0\.0\.1:\d+)", banner)
        sandbox = re.search(r"sandbox\s+(http://127\.0\.0\.1:\d+)", banner)
        key = re.search(r"API key\s+(tsk_\S+)", banner)
        assert api and sandbox and key, banner
        assert ("embedded Redis" in banner) == (redis == "embedded")
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 5  # redis, sandbox, api, worker, beat

        headers = {"Authorization": f"Bearer {key.group(1)}"}
        to = random_phone()
        created = httpx.post(f"{api.group(1)}/v1/verifications", json={"to": to}, headers=headers)
        assert created.status_code == 202
        path = f"{api.group(1)}/v1/verifications/{created.json()['id']}"
        wait_until(
            lambda: httpx.get(path, headers=headers).json()["status"] == "pending",
            timeout=20,
            what="pending",
        )
        with SandboxClient(sandbox.group(1)) as sandbox_client:
            code = sandbox_client.latest_code(to)
        check = httpx.post(f"{path}/checks", json={"code": code}, headers=headers)
        assert check.status_code == 202
        wait_until(
            lambda: httpx.get(path, headers=headers).json()["status"] == "approved",
            timeout=20,
            what="approved",
        )
    finally:
        process.send_signal(signal.SIGINT)
        try:
            returncode = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert returncode == 0, "".join(output)[-3000:]
    time.sleep(0.5)
    still_running = [
        child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE
    ]
    assert still_running == [], f"left behind: {still_running}"
    assert "stopped" in "".join(output)
