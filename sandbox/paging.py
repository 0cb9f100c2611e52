"""Twilio's paged lists: ``PageSize``/``Page``/``PageToken`` in, ``{key: [...], meta}`` out.

The SDK follows ``meta.next_page_url`` as an absolute URL, so page URLs are on the sandbox's
own base. A token names the last (or first) item of the page it came from, by the item's
``seq``, so paging stays right while items are added or removed between pages.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from sandbox.common import invalid

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class PageRequest:
    size: int = DEFAULT_PAGE_SIZE
    number: int = 0
    token: str | None = None

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> PageRequest:
        size = _whole(query, "PageSize", DEFAULT_PAGE_SIZE)
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise invalid("PageSize")
        token = query.get("PageToken") or None
        if token is not None and not (token[:2] in ("PA", "PB") and token[2:].isdigit()):
            raise invalid("PageToken")
        return cls(size, _whole(query, "Page", 0), token)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str | None
    previous_token: str | None


def select(
    items: Sequence[T], seq: Callable[[T], int], request: PageRequest, *, descending: bool
) -> Page[T]:
    """``items`` are in listing order, their ``seq`` ascending (or descending) along it."""

    def position(item: T) -> int:
        return -seq(item) if descending else seq(item)

    size = request.size
    if request.token is None:
        # Without a token, Page counts pages from the start (Twilio's Page is client state;
        # counting from it lets curl users page by hand).
        start = request.number * size
    else:
        mark = int(request.token[2:])
        mark = -mark if descending else mark
        if request.token.startswith("PA"):
            start = bisect_right(items, mark, key=position)
        else:
            start = max(bisect_left(items, mark, key=position) - size, 0)
    chosen = list(items[start : start + size])
    more = bool(chosen) and start + size < len(items)
    return Page(
        chosen,
        f"PA{seq(chosen[-1])}" if more else None,
        f"PB{seq(chosen[0])}" if start > 0 and chosen else None,
    )


def envelope(
    key: str,
    records: list[dict[str, Any]],
    page: Page[Any],
    request: PageRequest,
    list_url: str,
    filters: Mapping[str, str],
) -> dict[str, Any]:
    def url(number: int, token: str | None) -> str:
        query = {**filters, "PageSize": str(request.size), "Page": str(number)}
        if token is not None:
            query["PageToken"] = token
        return f"{list_url}?{urlencode(query)}"

    return {
        key: records,
        "meta": {
            "page": request.number,
            "page_size": request.size,
            "first_page_url": url(0, None),
            "previous_page_url": (
                url(max(request.number - 1, 0), page.previous_token)
                if page.previous_token
                else None
            ),
            "url": url(request.number, request.token),
            "next_page_url": url(request.number + 1, page.next_token) if page.next_token else None,
            "key": key,
        },
    }


def _whole(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise invalid(name)
    return int(raw)
