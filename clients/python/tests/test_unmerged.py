"""The export's `unmerged` turns (an old home's turns a failover left out of the session's
order, openapi.yaml) reach the caller of the client (pure: an in-process transport stands in
for the API)."""

from __future__ import annotations

import httpx
from test_stale import SESSION, SESSION_BODY

from tidewater_client import Client


def turn(index: int, content: str) -> dict[str, object]:
    return {"turn_index": index, "role": "user", "content": content, "created_at": "2026-12-07T12:00:00Z"}


def test_an_export_page_keeps_the_unmerged_turns_with_their_epoch() -> None:
    page_body = {
        "session": SESSION_BODY,
        "summary": None,
        "turns": [turn(1, "turn 1"), turn(2, "turn 2"), turn(3, "turn 4")],
        "unmerged": [{**turn(3, "turn 3"), "epoch": 0}],
    }
    http = httpx.Client(
        base_url="http://tidewater.test",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=page_body)),
    )
    page = Client("http://tidewater.test", "token", http_client=http).export_turns(SESSION)
    assert [(t.turn_index, t.content, t.epoch) for t in page.unmerged] == [(3, "turn 3", 0)]
    assert [t.turn_index for t in page.turns] == [1, 2, 3]
