"""A stale answer (`Tidewater-Stale: true`, served from a replica while the home region was
unreachable) is marked as such, and auto-pagination never hands on a stale listing as the
whole (pure: an in-process transport stands in for the API)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tidewater_client import Client, StalePageError

SESSION = "6f1c2a9e-3b4d-4c8a-9e21-5a7b8c9d0e1f"
SESSION_BODY = {
    "session_id": SESSION,
    "customer_id": "alice",
    "page_context": {},
    "created_at": "2026-12-07T12:00:00Z",
    "updated_at": "2026-12-07T12:00:00Z",
    "expires_at": "2026-12-08T12:00:00Z",
    "turn_count": 1,
}
TURN = {"turn_index": 1, "role": "user", "content": "hello", "created_at": "2026-12-07T12:00:00Z"}


def client_answering(pages: list[tuple[dict[str, Any], bool]]) -> Client:
    """A client whose API answers `pages` in turn, each marked stale or not."""
    answers = iter(pages)

    def answer(request: httpx.Request) -> httpx.Response:
        body, stale = next(answers)
        return httpx.Response(200, json=body, headers={"tidewater-stale": "true"} if stale else {})

    http = httpx.Client(base_url="http://tidewater.test", transport=httpx.MockTransport(answer))
    return Client("http://tidewater.test", "token", http_client=http)


def turns_page(next_cursor: str | None) -> dict[str, Any]:
    return {"session": SESSION_BODY, "summary": None, "turns": [TURN], "next_cursor": next_cursor}


def test_a_stale_context_and_page_say_so() -> None:
    context = {"session": SESSION_BODY, "summary": None, "omitted": None, "turns": [TURN], "degraded": False}
    client = client_answering([(context, True), (turns_page(None), True), (turns_page(None), False)])
    assert client.load_context(SESSION).stale
    assert client.export_turns(SESSION).stale
    assert not client.export_turns(SESSION).stale


def test_an_export_that_reaches_a_stale_page_is_never_taken_as_complete() -> None:
    client = client_answering([(turns_page("c1"), False), (turns_page(None), True)])
    turns = client.iter_turns(SESSION)
    assert next(turns).turn_index == 1
    with pytest.raises(StalePageError) as raised:
        next(turns)
    assert raised.value.items_before == 1
