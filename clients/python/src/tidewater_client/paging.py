"""Auto-pagination: every item of a paged route, following `next_cursor` until it is absent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")
P = TypeVar("P", bound="Page")


class Page(Protocol):
    @property
    def next_cursor(self) -> str | None: ...


def every_item(fetch: Callable[[str | None], P], items: Callable[[P], list[T]]) -> Iterator[T]:
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from items(page)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


async def every_item_async(
    fetch: Callable[[str | None], Awaitable[P]], items: Callable[[P], list[T]]
) -> AsyncIterator[T]:
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for item in items(page):
            yield item
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
