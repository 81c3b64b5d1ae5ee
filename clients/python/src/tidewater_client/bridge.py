"""What the framework adapters share: one tidewater session, called from sync or async code
(the async client when given, else the sync one on a worker thread), where a session that is
gone (cleared, or never created) reads as empty and is created again by the next append."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .async_client import AsyncClient
from .client import Client
from .errors import ConflictError, NotFoundError
from .models import Appended, Context, JsonObject, Role, Turn

T = TypeVar("T")


class SessionBinding:
    def __init__(self, client: Client, session_id: str, async_client: AsyncClient | None = None) -> None:
        self.client = client
        self.session_id = session_id
        self.async_client = async_client

    async def _run(self, sync: Callable[[], T], asynchronous: Callable[[AsyncClient], Awaitable[T]]) -> T:
        if self.async_client is not None:
            return await asynchronous(self.async_client)
        return await asyncio.to_thread(sync)

    # Sync

    def context(self, max_turns: int | None = None, consistent: bool = False) -> Context | None:
        """The context, or None when there is no such session (any more)."""
        try:
            return self.client.load_context(self.session_id, max_turns=max_turns, consistent=consistent)
        except NotFoundError:
            return None

    def append(self, role: Role, content: str, item: JsonObject) -> Appended:
        # The first attempt found no session, so it stored nothing: the second, into the
        # session created again, is a new append with a response_id of its own.
        try:
            return self.client.append_turn(self.session_id, role, content, item=item)
        except NotFoundError:
            self.client.create_session(session_id=self.session_id)
            return self.client.append_turn(self.session_id, role, content, item=item)

    def pop(self, attempts: int = 5) -> Turn | None:
        """Retracts the newest turn and answers it; None when there is none. When another writer
        appends in between, the retract is refused (409) and tried again on the new newest."""
        for _ in range(attempts):
            context = self.context(max_turns=1, consistent=True)
            if context is None or not context.turns:
                return None
            newest = context.turns[-1]
            try:
                self.client.retract_turn(self.session_id, newest.turn_index)
            except ConflictError:
                continue
            return newest
        raise ConflictError(409, "conflict", "the newest turn kept changing; nothing was retracted")

    def delete(self) -> None:
        self.client.delete_session(self.session_id)

    # Async

    async def acontext(self, max_turns: int | None = None, consistent: bool = False) -> Context | None:
        async def load(client: AsyncClient) -> Context | None:
            try:
                return await client.load_context(self.session_id, max_turns=max_turns, consistent=consistent)
            except NotFoundError:
                return None

        return await self._run(lambda: self.context(max_turns, consistent), load)

    async def aappend(self, role: Role, content: str, item: JsonObject) -> Appended:
        async def append(client: AsyncClient) -> Appended:
            try:
                return await client.append_turn(self.session_id, role, content, item=item)
            except NotFoundError:
                await client.create_session(session_id=self.session_id)
                return await client.append_turn(self.session_id, role, content, item=item)

        return await self._run(lambda: self.append(role, content, item), append)

    async def apop(self, attempts: int = 5) -> Turn | None:
        async def pop(client: AsyncClient) -> Turn | None:
            for _ in range(attempts):
                context = await self.acontext(max_turns=1, consistent=True)
                if context is None or not context.turns:
                    return None
                newest = context.turns[-1]
                try:
                    await client.retract_turn(self.session_id, newest.turn_index)
                except ConflictError:
                    continue
                return newest
            raise ConflictError(409, "conflict", "the newest turn kept changing; nothing was retracted")

        return await self._run(lambda: self.pop(attempts), pop)

    async def adelete(self) -> None:
        async def delete(client: AsyncClient) -> None:
            await client.delete_session(self.session_id)

        await self._run(self.delete, delete)


def readable(content: str, fallback: str) -> str:
    """The turn's `content`: the text when it has any, else a short rendering (never blank)."""
    return content if content.strip() else fallback
