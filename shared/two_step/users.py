"""A login server's user ids, as twostep takes them."""

from __future__ import annotations

import re

from shared.errors import InvalidInput

_USER_ID_MAX = 128
# 1 to 128 characters, none a control, format (bidi overrides, zero-width), line-break, non-ASCII
# space or private-use character of the BMP. A fixed list rather than isprintable(), whose answer
# for unassigned code points moves with Python's Unicode version and which no JSON Schema
# pattern can spell: the OpenAPI document carries this very pattern, and validators agree on it.
USER_ID_PATTERN = (
    r"^[^\x00-\x1f\x7f-\xa0\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u1680\u180e"
    r"\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u3000\ue000-\uf8ff\ufeff\ufff9-\ufffb]"
    rf"{{1,{_USER_ID_MAX}}}$"
)
_USER_ID_SHAPE = re.compile(USER_ID_PATTERN)


def is_user_id(value: str) -> bool:
    return _USER_ID_SHAPE.fullmatch(value) is not None


def validate_user_id(user_id: str) -> str:
    if not is_user_id(user_id):
        raise InvalidInput(f"a user_id is 1 to {_USER_ID_MAX} printable characters")
    return user_id
