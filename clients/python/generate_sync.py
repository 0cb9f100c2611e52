"""Writes ``src/twostep_client/_sync/`` from ``src/twostep_client/_async/`` with unasync, so the
two clients are one source. Run it after changing the async client:

    python clients/python/generate_sync.py          # rewrite
    python clients/python/generate_sync.py --check  # exit 1 if the committed copy is stale
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import unasync

PACKAGE = Path(__file__).resolve().parent / "src" / "twostep_client"
REPLACEMENTS = {
    "AsyncTwostepClient": "TwostepClient",
    "AsyncClient": "Client",
    "AsyncBaseTransport": "BaseTransport",
    "aclose": "close",
    "asyncio": "time",  # asyncio.sleep → time.sleep
}
HEADER = "# Generated from _async/client.py by clients/python/generate_sync.py. Do not edit.\n"


def generate(into: Path) -> Path:
    """The sync client written from the async one, under ``into``; returns its path."""
    source = into / "_async" / "client.py"
    source.parent.mkdir(parents=True)
    shutil.copy(PACKAGE / "_async" / "client.py", source)
    rule = unasync.Rule("/_async/", "/_sync/", additional_replacements=REPLACEMENTS)
    unasync.unasync_files([str(source)], rules=[rule])
    written = into / "_sync" / "client.py"
    written.write_text(HEADER + written.read_text())
    # Lines that wrapped only because of an `await` fit on one line now: format as ruff would.
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(written)], check=True)
    return written


def main() -> int:
    committed = PACKAGE / "_sync" / "client.py"
    with tempfile.TemporaryDirectory() as scratch:
        fresh = generate(Path(scratch)).read_text()
    if "--check" in sys.argv[1:]:
        if committed.read_text() != fresh:
            print(f"{committed} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    committed.write_text(fresh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
