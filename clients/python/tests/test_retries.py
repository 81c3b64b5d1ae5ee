"""The client's retry path through the fault proxy between the functions and DynamoDB Local:
appends whose answers the client never gets (the transaction applied, answered 3 s late, past
the client's 1 s timeout) and appends answered 503; no turn is stored twice, none is lost."""

from __future__ import annotations

import random
from collections.abc import Callable

import httpx
from conftest import FaultProxy

from tidewater_client import AsyncClient, Client, RetryPolicy

APPENDS = 30


def test_dropped_answers_and_503s_store_every_turn_exactly_once(
    api: str, mint: Callable[..., str], customer: str, faults: FaultProxy
) -> None:
    seen: list[int] = []
    timeouts: list[str] = []

    def count(response: httpx.Response) -> None:
        seen.append(response.status_code)

    http = httpx.Client(base_url=api, timeout=1.0, event_hooks={"response": [count]})
    retry = RetryPolicy(max_attempts=30, deadline=120, initial_backoff=0.05, max_backoff=0.5, rng=random.Random(3))
    client = Client(api, token=mint(customer), http_client=http, retry=retry)
    original_send = http.send

    def send(request: httpx.Request, **kwargs: object) -> httpx.Response:
        try:
            return original_send(request, **kwargs)  # type: ignore[arg-type]
        except httpx.TimeoutException:
            timeouts.append(request.url.path)
            raise

    http.send = send  # type: ignore[method-assign]
    session = client.create_session()

    faults.switch(True)
    answers = [client.append_turn(session.session_id, "user", f"message {n}") for n in range(APPENDS)]
    faults.switch(False)

    turns = list(client.iter_turns(session.session_id))
    assert [t.content for t in turns] == [f"message {n}" for n in range(APPENDS)]
    assert [t.turn_index for t in turns] == list(range(1, APPENDS + 1))
    assert [a.turn_index for a in answers] == list(range(1, APPENDS + 1))
    # The faults did hit: answers were dropped and retried into duplicate:true, and 503s retried.
    assert timeouts, "no answer was dropped"
    assert any(a.duplicate for a in answers), "no retry met its own stored turn"
    assert 503 in seen, "no 503 reached the client"
    client.close()


async def test_async_client_retries_the_same_way(
    api: str, mint: Callable[..., str], customer: str, faults: FaultProxy
) -> None:
    retry = RetryPolicy(max_attempts=30, deadline=120, initial_backoff=0.05, max_backoff=0.5, rng=random.Random(4))
    async with AsyncClient(api, token=mint(customer), timeout=1.0, retry=retry) as client:
        session = await client.create_session()
        faults.switch(True)
        answers = [await client.append_turn(session.session_id, "user", f"message {n}") for n in range(10)]
        faults.switch(False)
        turns = [t async for t in client.iter_turns(session.session_id)]
    assert [t.content for t in turns] == [f"message {n}" for n in range(10)]
    assert [a.turn_index for a in answers] == list(range(1, 11))
