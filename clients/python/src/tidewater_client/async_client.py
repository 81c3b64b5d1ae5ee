"""`AsyncClient`: the asyncio twin of `Client`, with the same methods, retries and cache."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx

from . import calls
from .calls import Call, ContextCache, retryable_answer
from .client import user_agent
from .errors import RetriesExhaustedError
from .models import (
    Appended,
    Context,
    Fact,
    FactPage,
    JsonObject,
    Receipt,
    ResumableSession,
    Retracted,
    Role,
    Session,
    SessionCreated,
    SessionPage,
    Turn,
    TurnPage,
)
from .paging import every_item_async
from .retry import RetryPolicy, retryable_exception

T = TypeVar("T")
AsyncTokenSource = str | Callable[[], str] | Callable[[], Awaitable[str]] | None


class AsyncClient:
    """As `Client`; `token` may also be an async callable."""

    def __init__(
        self,
        base_url: str,
        token: AsyncTokenSource = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._token = token
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._cache = ContextCache()
        self._http = http_client or httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers={"user-agent": user_agent()}
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def _headers(self, call: Call[Any]) -> dict[str, str]:
        headers = dict(call.headers)
        token: Any = self._token() if callable(self._token) else self._token
        if inspect.isawaitable(token):
            token = await token
        if token:
            headers["authorization"] = f"Bearer {token}"
        return headers

    async def send(self, call: Call[T]) -> T:
        """As `Client.send`."""
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            failure: BaseException
            try:
                response = await self._http.request(
                    call.method, call.path, params=call.params, json=call.json, headers=await self._headers(call)
                )
            except httpx.HTTPError as error:
                if not retryable_exception(error):
                    raise
                failure = error
            else:
                retryable = retryable_answer(response)
                if retryable is None:
                    return call.parse(response)
                failure, retry_after = retryable
            elapsed = time.monotonic() - started
            delay = self._retry.next_delay(attempt, elapsed, retry_after)
            if delay is None:
                raise RetriesExhaustedError(attempt, elapsed, failure)
            await self._sleep(delay)

    async def create_session(
        self, *, page_context: JsonObject | None = None, session_id: str | None = None
    ) -> SessionCreated:
        return await self.send(calls.create_session(session_id, page_context))

    async def update_session(
        self, session_id: str, page_context: JsonObject, *, if_match: str | None = None
    ) -> Session:
        return await self.send(calls.update_session(session_id, page_context, if_match))

    async def delete_session(self, session_id: str) -> None:
        await self.send(calls.delete_session(session_id))

    async def list_sessions(self, *, limit: int | None = None, cursor: str | None = None) -> SessionPage:
        return await self.send(calls.list_sessions(limit, cursor))

    def iter_sessions(self, *, page_size: int | None = None) -> AsyncIterator[ResumableSession]:
        return every_item_async(lambda cursor: self.list_sessions(limit=page_size, cursor=cursor), lambda p: p.sessions)

    async def append_turn(
        self,
        session_id: str,
        role: Role,
        content: str,
        *,
        response_id: str | None = None,
        intent: str | None = None,
        token_count: int | None = None,
        item: JsonObject | None = None,
    ) -> Appended:
        return await self.send(calls.append_turn(session_id, role, content, response_id, intent, token_count, item))

    async def retract_turn(self, session_id: str, turn_index: int) -> Retracted:
        return await self.send(calls.retract_turn(session_id, turn_index))

    async def load_context(
        self,
        session_id: str,
        *,
        max_turns: int | None = None,
        max_tokens: int | None = None,
        consistent: bool = False,
        include_memory: bool = False,
        max_memory: int | None = None,
        use_cache: bool = True,
    ) -> Context:
        return await self.send(
            self._cache.load_context(
                session_id, max_turns, max_tokens, consistent, include_memory, max_memory, use_cache
            )
        )

    async def export_turns(self, session_id: str, *, limit: int | None = None, cursor: str | None = None) -> TurnPage:
        return await self.send(calls.export_turns(session_id, limit, cursor))

    def iter_turns(self, session_id: str, *, page_size: int | None = None) -> AsyncIterator[Turn]:
        return every_item_async(
            lambda cursor: self.export_turns(session_id, limit=page_size, cursor=cursor), lambda p: p.turns
        )

    async def list_memory(
        self, *, customer_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> FactPage:
        return await self.send(calls.list_memory(customer_id, limit, cursor))

    def iter_memory(self, *, customer_id: str | None = None, page_size: int | None = None) -> AsyncIterator[Fact]:
        return every_item_async(
            lambda cursor: self.list_memory(customer_id=customer_id, limit=page_size, cursor=cursor), lambda p: p.facts
        )

    async def forget_fact(self, fact_id: str, *, customer_id: str | None = None) -> None:
        await self.send(calls.forget_fact(fact_id, customer_id))

    async def purge_customer(self, customer_id: str | None = None) -> Receipt:
        return await self.send(calls.purge_customer(customer_id))

    async def get_receipt(self, receipt_id: str) -> Receipt:
        return await self.send(calls.get_receipt(receipt_id))
