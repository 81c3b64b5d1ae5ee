"""`Client`: the synchronous client, on httpx. `AsyncClient` (async_client.py) has the same methods."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx

from . import calls
from .calls import Call, ContextCache, retryable_answer
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
from .paging import every_item
from .retry import RetryPolicy, retryable_exception

T = TypeVar("T")
TokenSource = str | Callable[[], str] | None


def user_agent() -> str:
    return "tidewater-client-python/0.1.0"


class Client:
    """A tidewater API client. `token` is a bearer token, or a callable that returns the current
    one (called before every request, so that it can refresh). Every call is retried on
    connection errors, timeouts and 503 as `retry` says; appends are exactly-once across those
    retries, since each logical append keeps one `response_id`."""

    def __init__(
        self,
        base_url: str,
        token: TokenSource = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._token = token
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._cache = ContextCache()
        self._http = http_client or httpx.Client(
            base_url=base_url, timeout=timeout, headers={"user-agent": user_agent()}
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _headers(self, call: Call[Any]) -> dict[str, str]:
        headers = dict(call.headers)
        token = self._token() if callable(self._token) else self._token
        if token:
            headers["authorization"] = f"Bearer {token}"
        return headers

    def send(self, call: Call[T]) -> T:
        """Sends one call, the same request on every retry, until an answer that is not retryable."""
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            failure: BaseException
            try:
                response = self._http.request(
                    call.method, call.path, params=call.params, json=call.json, headers=self._headers(call)
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
            self._sleep(delay)

    # Sessions

    def create_session(
        self, *, page_context: JsonObject | None = None, session_id: str | None = None
    ) -> SessionCreated:
        """Creates a session; its `session_id` is made here when not given, so retries are safe."""
        return self.send(calls.create_session(session_id, page_context))

    def update_session(self, session_id: str, page_context: JsonObject, *, if_match: str | None = None) -> Session:
        return self.send(calls.update_session(session_id, page_context, if_match))

    def delete_session(self, session_id: str) -> None:
        self.send(calls.delete_session(session_id))

    def list_sessions(self, *, limit: int | None = None, cursor: str | None = None) -> SessionPage:
        return self.send(calls.list_sessions(limit, cursor))

    def iter_sessions(self, *, page_size: int | None = None) -> Iterator[ResumableSession]:
        """Every live session of the caller, newest activity first, following `next_cursor`."""
        return every_item(lambda cursor: self.list_sessions(limit=page_size, cursor=cursor), lambda p: p.sessions)

    # Turns

    def append_turn(
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
        """Appends a turn exactly once: `response_id` (made here when not given) is sent on every
        retry, so a retry whose first attempt was stored answers its original `turn_index` with
        `duplicate=True`. The answer carries the `response_id` used."""
        return self.send(calls.append_turn(session_id, role, content, response_id, intent, token_count, item))

    def retract_turn(self, session_id: str, turn_index: int) -> Retracted:
        """Takes back the newest turn, only while it is still the newest (ConflictError otherwise)."""
        return self.send(calls.retract_turn(session_id, turn_index))

    def load_context(
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
        """The context; a reload of the same query sends `If-None-Match`, and a 304 answers the
        cached context (with `not_modified=True`)."""
        return self.send(
            self._cache.load_context(
                session_id, max_turns, max_tokens, consistent, include_memory, max_memory, use_cache
            )
        )

    def export_turns(self, session_id: str, *, limit: int | None = None, cursor: str | None = None) -> TurnPage:
        return self.send(calls.export_turns(session_id, limit, cursor))

    def iter_turns(self, session_id: str, *, page_size: int | None = None) -> Iterator[Turn]:
        """Every turn of the session in order (retracted ones included, marked), page by page."""
        return every_item(
            lambda cursor: self.export_turns(session_id, limit=page_size, cursor=cursor), lambda p: p.turns
        )

    # Memory and privacy

    def list_memory(
        self, *, customer_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> FactPage:
        return self.send(calls.list_memory(customer_id, limit, cursor))

    def iter_memory(self, *, customer_id: str | None = None, page_size: int | None = None) -> Iterator[Fact]:
        return every_item(
            lambda cursor: self.list_memory(customer_id=customer_id, limit=page_size, cursor=cursor), lambda p: p.facts
        )

    def forget_fact(self, fact_id: str, *, customer_id: str | None = None) -> None:
        self.send(calls.forget_fact(fact_id, customer_id))

    def purge_customer(self, customer_id: str | None = None) -> Receipt:
        """Deletes every session and fact of the customer (the caller when None); safe to repeat."""
        return self.send(calls.purge_customer(customer_id))

    def get_receipt(self, receipt_id: str) -> Receipt:
        return self.send(calls.get_receipt(receipt_id))
