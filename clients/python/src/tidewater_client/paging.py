"""Auto-pagination: every item of a paged route, following `next_cursor` until it is absent;
a page served stale raises `StalePageError` before any of its items, so that a partial
listing is never taken for the whole."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Protocol, TypeVar

from .errors import StalePageError

T = TypeVar("T")
P = TypeVar("P", bound="Page")


class Page(Protocol):
    @property
    def next_cursor(self) -> str | None: ...
    @property
    def stale(self) -> bool: ...


def every_item(fetch: Callable[[str | None], P], items: Callable[[P], list[T]]) -> Iterator[T]:
    cursor: str | None = None
    count = 0
    while True:
        page = fetch(cursor)
        if page.stale:
            raise StalePageError(count)
        count += len(items(page))
        yield from items(page)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


async def every_item_async(
    fetch: Callable[[str | None], Awaitable[P]], items: Callable[[P], list[T]]
) -> AsyncIterator[T]:
    cursor: str | None = None
    count = 0
    while True:
        page = await fetch(cursor)
        if page.stale:
            raise StalePageError(count)
        count += len(items(page))
        for item in items(page):
            yield item
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
