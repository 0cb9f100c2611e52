"""``twostep bench --profile DIR``: py-spy on each of twostep's processes during its storm.

Each process's samples are written as collapsed stacks (``DIR/<scenario>-<process>.txt``, for
flame graphs) and summed by package: the package of the innermost frame is where the CPU went
(``sqlalchemy``, ``kombu``, ``asyncio``, ``shared.verifications``…). Only the thread holding
the GIL is sampled (``--gil``): what runs Python is where the CPU goes, an idle event loop or a
parked Celery thread costs nothing, and a worker's hundreds of threads do not slow the sampler
down (sampling every thread of a worker missed nine samples in ten).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks.processes import BenchError, Target

_RATE = 200  # samples a second, per process
_FRAME = re.compile(r"\((?P<path>[^():]+):\d+\)$")
# Our own code is summed per feature package; the rest per top-level package.
_OURS = ("shared", "api", "workers", "twostep", "sandbox", "benchmarks")


@dataclass(frozen=True)
class Profile:
    process: str
    samples: int
    # Package of the innermost frame → share of samples, largest first.
    by_package: dict[str, float]


def package_of(frame: str) -> str:
    """``execute (sqlalchemy/engine/base.py:1412)`` → ``sqlalchemy``;
    ``claim (shared/kit/attempts.py:228)`` → ``shared.kit``."""
    found = _FRAME.search(frame)
    if found is None:
        return "(native)"
    parts = [part for part in found.group("path").split("/") if part]
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    if parts and parts[0] in _OURS:
        return ".".join(parts[:2]).removesuffix(".py") if len(parts) > 1 else parts[0]
    if len(parts) == 1:
        return f"python:{parts[0].removesuffix('.py')}"  # a module of the standard library
    return parts[0]


def summarise(process: str, collapsed: Path) -> Profile:
    counts: Counter[str] = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        counts[package_of(stack.rsplit(";", 1)[-1])] += int(count)
    total = sum(counts.values())
    shares = {name: round(n / total, 3) for name, n in counts.most_common()} if total else {}
    return Profile(process, total, shares)


class Profiler:
    """py-spy attached to each target's process for the length of a ``with`` block."""

    def __init__(self, targets: list[Target], directory: Path, label: str) -> None:
        # Beside this interpreter first: a venv's console scripts need not be on PATH.
        program = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy"
        )
        if program is None:
            raise BenchError("--profile needs py-spy (pip install -e '.[test]' installs it)")
        self._program = program
        self._targets = [target for target in targets if target.pid is not None]
        self._directory = directory
        self._label = label
        self._running: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
        self.profiles: list[Profile] = []

    def __enter__(self) -> Profiler:
        self._directory.mkdir(parents=True, exist_ok=True)
        for target in self._targets:
            output = self._directory / f"{self._label}-{target.name}.txt"
            argv = [
                self._program, "record", "--pid", str(target.pid), "--rate", str(_RATE),
                "--format", "raw", "--output", str(output), "--nonblocking", "--gil",
            ]  # fmt: skip
            spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._running.append((target.name, output, spy))
        return self

    def __exit__(self, *_exc: object) -> None:
        for name, output, spy in self._running:
            spy.send_signal(signal.SIGINT)  # py-spy writes what it has, then exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(timeout=30)
            if spy.poll() is None:
                spy.kill()
            if output.exists():
                self.profiles.append(summarise(name, output))
