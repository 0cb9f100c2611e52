"""The dependency rule of the layout (CONTRIBUTING.md), checked on real imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

PROBE = """
import importlib, pkgutil, sys
root = sys.argv[1]
package = importlib.import_module(root)
for module in pkgutil.walk_packages(package.__path__, root + "."):
    if not module.name.endswith("__main__"):
        importlib.import_module(module.name)
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("api", {"workers", "sandbox", "twilio"}),
        ("shared", {"api", "workers", "sandbox"}),
        ("sandbox", {"api", "workers", "shared", "twilio"}),
        ("workers", {"api", "sandbox"}),
    ],
)
def test_packages_import_only_what_the_architecture_allows(
    package: str, forbidden: set[str]
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, package], capture_output=True, text=True, cwd=REPO, check=True
    )
    imported = set(result.stdout.split())
    assert package in imported
    assert imported & forbidden == set()


def test_only_the_adapter_imports_twilio() -> None:
    importers = {
        str(path.relative_to(REPO))
        for folder in ("api", "workers", "shared", "sandbox", "twostep")
        for path in (REPO / folder).rglob("*.py")
        if any(
            line.startswith(("import twilio", "from twilio"))
            for line in Path(path).read_text().splitlines()
        )
    }
    # The adapter is shared/verify/twilio.py and the halves it mixes in (twilio_*.py).
    adapter = {str(path.relative_to(REPO)) for path in (REPO / "shared/verify").glob("twilio*.py")}
    assert "shared/verify/twilio.py" in importers and importers <= adapter
