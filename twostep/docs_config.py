"""The configuration reference (``docs/configuration.md``), written from the settings class so
that it cannot drift from it: every field's environment variable, default and description, by
group (``shared/kit/setting_groups.py``), and the few variables read outside it.

``python -m twostep.docs_config`` rewrites the page; ``--check`` only says whether it is stale
(``tests/unit/test_docs.py`` fails while it is). ``mkdocs.yml`` loads this module as a hook too,
so the site is built from the settings themselves whatever the committed page says.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic.fields import FieldInfo

from shared.kit.setting_groups import SettingGroup
from shared.kit.settings import Settings

if TYPE_CHECKING:
    from mkdocs.structure.pages import Page

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "configuration.md"


@dataclass(frozen=True)
class Variable:
    """A variable read outside the settings class: by a process that does not load it."""

    name: str
    default: str
    description: str
    read_in: str  # the file that reads it, relative to the repository


OTHER_VARIABLES = (
    Variable(
        "TWOSTEP_FLOWER_BASIC_AUTH",
        "random, printed",
        "`user:password` for `twostep flower`; production wants a password of 12 characters "
        "or more",
        "twostep/cli.py",
    ),
    Variable(
        "TWOSTEP_SANDBOX_FAULTS",
        "none",
        "the sandbox's failures at start-up (same JSON as `PUT /sandbox/faults`)",
        "sandbox/faults.py",
    ),
    Variable(
        "TWOSTEP_SANDBOX_CODE_LIFETIME_SECONDS",
        "`600`",
        "the sandbox's code lifetime",
        "sandbox/server.py",
    ),
    Variable(
        "TWOSTEP_SANDBOX_ALLOW_REMOTE",
        "`false`",
        "serve the sandbox's `/sandbox/*` routes (the codes it sent) to other machines, not "
        "only to loopback",
        "sandbox/server.py",
    ),
    Variable(
        "TWOSTEP_SANDBOX_STATE_FILE",
        "unset",
        "a JSON file where the sandbox keeps the services it made (one per tenant) across "
        "restarts (`twostep dev` passes `--state-file`, in its data directory)",
        "sandbox/server.py",
    ),
)

_INTRO = """\
# Configuration

<!-- Written by `python -m twostep.docs_config` from the settings class: do not edit by hand. -->

Environment variables, read once by one settings object (`shared/kit/settings.py`; its fields,
each with the description below, are declared by group in `shared/kit/setting_groups.py`).
Durations are seconds. An empty variable counts as unset. This page is generated from the
settings themselves: `python -m twostep.docs_config` rewrites it, and a test fails while it is
stale.
"""

_OUTRO = """\
The broker has no visibility timeout to set: a job lost with a dead worker (SIGKILL, a lost
machine) is published again by the sweeper once its row's claim or its next look has passed
(`TWOSTEP_REQUEUE_AFTER_SECONDS`, `TWOSTEP_CLAIM_LEASE_SECONDS`).
"""


def env_name(field: str) -> str:
    """The environment variable a settings field is read from."""
    alias = Settings.model_fields[field].validation_alias
    if alias is not None:
        return str(alias.choices[0])  # type: ignore[union-attr]
    return f"TWOSTEP_{field.upper()}"


def groups() -> Iterator[type[SettingGroup]]:
    """The settings' groups, in the order the settings class lists them."""
    for base in Settings.__bases__:
        if issubclass(base, SettingGroup):
            yield base


def _shown(value: object) -> str:
    if value is None or value == ():
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, frozenset | tuple):
        value = ",".join(sorted(str(item) for item in value))
    if isinstance(value, dict):
        value = json.dumps(value)
    return f"`{value}`"


def default_of(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return _shown(field.default_factory())  # type: ignore[call-arg]
    return _shown(field.default)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _paragraph(text: str | None) -> str:
    return " ".join((text or "").split())


def render() -> str:
    """The whole page, as ``docs/configuration.md`` must hold it."""
    parts = [_INTRO]
    for group in groups():
        title, _, body = (group.__doc__ or group.__name__).partition("\n")
        parts.append(f"## {title.strip().rstrip('.')}\n")
        if body.strip():
            parts.append(f"{_paragraph(body)}\n")
        rows = ["| variable | default | meaning |", "|---|---|---|"]
        for name, field in group.model_fields.items():
            rows.append(
                f"| `{env_name(name)}` | {default_of(field)} | {_cell(field.description or '')} |"
            )
        parts.append("\n".join(rows) + "\n")
    parts.append(
        "## Read outside the settings\n\nBy `twostep flower` and the sandbox, which read these "
        "themselves.\n"
    )
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows.extend(
        f"| `{variable.name}` | {variable.default} | {_cell(variable.description)} |"
        for variable in OTHER_VARIABLES
    )
    parts.append("\n".join(rows) + "\n")
    parts.append(_OUTRO)
    return "\n".join(parts)


def on_page_markdown(markdown: str, /, *, page: Page, **_: object) -> str:
    """MkDocs hook: the configuration page is built from the settings, not from the file."""
    if page.file.src_uri == PAGE.name:
        return render()
    return markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twostep.docs_config", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the page is stale")
    args = parser.parse_args(argv)
    page = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != page:
            sys.stderr.write(f"{PAGE} is stale: run python -m twostep.docs_config\n")
            return 1
        return 0
    PAGE.write_text(page)
    sys.stderr.write(f"wrote {PAGE}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
