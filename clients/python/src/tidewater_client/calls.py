"""Every API operation as a `Call`: the request to send and how to read its answer. The sync
and async clients send the same calls, so the two cannot drift apart."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from .errors import TidewaterError, error_from_answer
from .models import (
    Appended,
    Context,
    FactPage,
    JsonObject,
    NewSession,
    NewTurn,
    Receipt,
    Retracted,
    Role,
    Session,
    SessionCreated,
    SessionPage,
    SessionPatch,
    TurnPage,
)
from .retry import RETRYABLE_STATUSES, parse_retry_after

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, str | int] = field(default_factory=dict)
    json: JsonObject | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def stale(response: httpx.Response) -> bool:
    """Whether the answer was served from a replica while its home region was unreachable."""
    return bool(response.headers.get("tidewater-stale") == "true")


def raise_for_error(response: httpx.Response) -> None:
    """Raises the error class of the answer's `code` for any status of 400 or more."""
    if response.status_code < 400:
        return
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    raise error_from_answer(response.status_code, body, parse_retry_after(response.headers.get("retry-after")))


def retryable_answer(response: httpx.Response) -> tuple[TidewaterError, float | None] | None:
    """For an answer worth retrying (503 and the gateways' 408, 429, 502, 504): its error and
    `Retry-After`; None for any other answer, which the call's parser reads or raises."""
    if response.status_code not in RETRYABLE_STATUSES:
        return None
    try:
        raise_for_error(response)
    except TidewaterError as error:
        return error, error.retry_after
    return None


def _json(response: httpx.Response) -> JsonObject:
    raise_for_error(response)
    body: JsonObject = response.json()
    return body


def _nothing(response: httpx.Response) -> None:
    raise_for_error(response)


def _segment(value: str) -> str:
    return quote(value, safe="")


def _params(**values: str | int | bool | None) -> dict[str, str | int]:
    out: dict[str, str | int] = {}
    for name, value in values.items():
        if value is None:
            continue
        out[name] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


def new_response_id() -> str:
    """A fresh idempotency key for one logical append (128 random bits, URL-safe)."""
    return uuid.uuid4().hex


def create_session(session_id: str | None, page_context: JsonObject | None) -> Call[SessionCreated]:
    # The id is made here, once, so that a retry of a create whose answer was lost finds the
    # session it made (200) instead of making a second one.
    request = NewSession(session_id or str(uuid.uuid4()), page_context)
    return Call("POST", "/sessions", lambda r: SessionCreated.from_json(_json(r)), json=request.to_json())


def append_turn(
    session_id: str,
    role: Role,
    content: str,
    response_id: str | None,
    intent: str | None,
    token_count: int | None,
    item: JsonObject | None,
) -> Call[Appended]:
    turn = NewTurn(response_id or new_response_id(), role, content, intent, token_count, item)
    return Call(
        "POST",
        f"/sessions/{_segment(session_id)}/turns",
        lambda r: Appended.from_json(_json(r), turn.response_id),
        json=turn.to_json(),
    )


def retract_turn(session_id: str, turn_index: int) -> Call[Retracted]:
    return Call(
        "POST",
        f"/sessions/{_segment(session_id)}/turns/{int(turn_index)}/retract",
        lambda r: Retracted.from_json(_json(r)),
    )


def update_session(session_id: str, page_context: JsonObject, if_match: str | None) -> Call[Session]:
    headers = {} if if_match is None else {"if-match": if_match}
    return Call(
        "PATCH",
        f"/sessions/{_segment(session_id)}",
        lambda r: Session.from_json(_json(r)),
        json=SessionPatch(page_context).to_json(),
        headers=headers,
    )


def delete_session(session_id: str) -> Call[None]:
    return Call("DELETE", f"/sessions/{_segment(session_id)}", _nothing)


class ContextCache:
    """The last context of each (session, query), with its ETag, for `If-None-Match`: a reload
    that gets 304 answers the cached context. Holds the `size` most recently used entries."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, tuple[tuple[str, str | int], ...]], Context] = OrderedDict()

    def load_context(
        self,
        session_id: str,
        max_turns: int | None,
        max_tokens: int | None,
        consistent: bool,
        include_memory: bool,
        max_memory: int | None,
        use_cache: bool,
    ) -> Call[Context]:
        params = _params(
            max_turns=max_turns,
            max_tokens=max_tokens,
            consistent=consistent or None,
            include="memory" if include_memory else None,
            max_memory=max_memory,
        )
        key = (session_id, tuple(sorted(params.items())))
        cached = self._entries.get(key) if use_cache else None
        headers = {"if-none-match": cached.etag} if cached is not None and cached.etag else {}

        def parse(response: httpx.Response) -> Context:
            if response.status_code == 304 and cached is not None:
                self._entries.move_to_end(key)
                return Context(
                    cached.session,
                    cached.summary,
                    cached.omitted,
                    cached.turns,
                    cached.degraded,
                    cached.customer_memory,
                    cached.etag,
                    not_modified=True,
                )
            context = Context.from_json(_json(response), response.headers.get("etag"), stale(response))
            # A degraded answer holds no memory, so it is never the one to answer a 304 with.
            if context.etag and not context.degraded:
                self._entries[key] = context
                self._entries.move_to_end(key)
                while len(self._entries) > self._size:
                    self._entries.popitem(last=False)
            return context

        return Call("GET", f"/sessions/{_segment(session_id)}/context", parse, params=params, headers=headers)


def export_turns(session_id: str, limit: int | None, cursor: str | None) -> Call[TurnPage]:
    return Call(
        "GET",
        f"/sessions/{_segment(session_id)}/turns",
        lambda r: TurnPage.from_json(_json(r), stale(r)),
        params=_params(limit=limit, cursor=cursor),
    )


def list_sessions(limit: int | None, cursor: str | None) -> Call[SessionPage]:
    return Call(
        "GET",
        "/customers/me/sessions",
        lambda r: SessionPage.from_json(_json(r), stale(r)),
        params=_params(limit=limit, cursor=cursor),
    )


def _customer(customer_id: str | None) -> str:
    return "me" if customer_id is None else _segment(customer_id)


def list_memory(customer_id: str | None, limit: int | None, cursor: str | None) -> Call[FactPage]:
    return Call(
        "GET",
        f"/customers/{_customer(customer_id)}/memory",
        lambda r: FactPage.from_json(_json(r), stale(r)),
        params=_params(limit=limit, cursor=cursor),
    )


def forget_fact(fact_id: str, customer_id: str | None) -> Call[None]:
    return Call("DELETE", f"/customers/{_customer(customer_id)}/memory/{_segment(fact_id)}", _nothing)


def purge_customer(customer_id: str | None) -> Call[Receipt]:
    return Call("DELETE", f"/customers/{_customer(customer_id)}", lambda r: Receipt.from_json(_json(r)))


def get_receipt(receipt_id: str) -> Call[Receipt]:
    return Call("GET", f"/receipts/{_segment(receipt_id)}", lambda r: Receipt.from_json(_json(r)))
