"""The client against the live stack: sessions, exactly-once appends, the ETag cache, paging,
auth and the error classes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tidewater_client import (
    AsyncClient,
    Client,
    ConflictError,
    NotFoundError,
    UnauthorizedError,
    ValidationFailedError,
)


def test_create_append_and_load_context(client: Client) -> None:
    session = client.create_session(page_context={"page": "/manga/frieren/vol-3"})
    first = client.append_turn(session.session_id, "user", "Is volume 3 of Frieren in stock?", intent="stock_check")
    second = client.append_turn(session.session_id, "assistant", "Yes, 4 copies. Shall I reserve one?")
    assert (first.turn_index, first.duplicate, second.turn_index) == (1, False, 2)

    context = client.load_context(session.session_id)
    assert context.session is not None and context.session.page_context == {"page": "/manga/frieren/vol-3"}
    assert [(t.turn_index, t.role, t.content) for t in context.turns] == [
        (1, "user", "Is volume 3 of Frieren in stock?"),
        (2, "assistant", "Yes, 4 copies. Shall I reserve one?"),
    ]
    assert context.turns[0].intent == "stock_check"


def test_retry_with_same_response_id_answers_original_turn_index(client: Client) -> None:
    session = client.create_session()
    first = client.append_turn(session.session_id, "user", "hello", response_id="msg-1")
    client.append_turn(session.session_id, "assistant", "hi")
    again = client.append_turn(session.session_id, "user", "hello", response_id="msg-1")
    assert (again.turn_index, again.duplicate, again.response_id) == (first.turn_index, True, "msg-1")
    assert client.load_context(session.session_id).session.turn_count == 2  # type: ignore[union-attr]


def test_an_append_without_response_id_makes_one_and_answers_it(client: Client) -> None:
    session = client.create_session()
    appended = client.append_turn(session.session_id, "user", "hello")
    assert len(appended.response_id) == 32
    again = client.append_turn(session.session_id, "user", "hello", response_id=appended.response_id)
    assert again.duplicate and again.turn_index == appended.turn_index


def test_same_response_id_with_another_payload_is_conflict(client: Client) -> None:
    session = client.create_session()
    client.append_turn(session.session_id, "user", "hello", response_id="msg-1")
    with pytest.raises(ConflictError) as raised:
        client.append_turn(session.session_id, "user", "goodbye", response_id="msg-1")
    assert (raised.value.status, raised.value.code) == (409, "conflict")


def test_a_reload_that_gets_304_answers_the_cached_context(client: Client) -> None:
    session = client.create_session()
    client.append_turn(session.session_id, "user", "hello")
    first = client.load_context(session.session_id)
    again = client.load_context(session.session_id)
    assert first.etag and not first.not_modified
    assert again.not_modified and again.turns == first.turns and again.etag == first.etag

    client.append_turn(session.session_id, "assistant", "hi")
    changed = client.load_context(session.session_id)
    assert not changed.not_modified and len(changed.turns) == 2


def test_iter_turns_follows_every_page(client: Client) -> None:
    session = client.create_session()
    for n in range(1, 8):
        client.append_turn(session.session_id, "user" if n % 2 else "assistant", f"turn {n}")
    turns = list(client.iter_turns(session.session_id, page_size=3))
    assert [t.turn_index for t in turns] == list(range(1, 8))


def test_iter_sessions_follows_every_page(client: Client) -> None:
    made = {client.create_session().session_id for _ in range(5)}
    listed = [s.session_id for s in client.iter_sessions(page_size=2)]
    assert set(listed) == made and len(listed) == 5


def test_iter_memory_of_a_new_customer_is_empty(client: Client) -> None:
    assert list(client.iter_memory(page_size=5)) == []


def test_an_unknown_session_is_not_found(client: Client) -> None:
    with pytest.raises(NotFoundError):
        client.load_context("00000000-0000-4000-8000-000000000000")


def test_a_broken_rule_is_validation_failed(client: Client) -> None:
    session = client.create_session()
    with pytest.raises(ValidationFailedError) as raised:
        client.append_turn(session.session_id, "user", "   ")
    assert raised.value.status == 422 and raised.value.message


def test_no_token_is_unauthorized(api: str) -> None:
    with Client(api) as anonymous, pytest.raises(UnauthorizedError):
        anonymous.create_session()


def test_a_token_callable_is_asked_before_every_request(api: str, mint: Callable[..., str], customer: str) -> None:
    asked = []

    def token() -> str:
        asked.append(1)
        return mint(customer)

    with Client(api, token=token) as client:
        session = client.create_session()
        client.load_context(session.session_id)
    assert len(asked) == 2


def test_delete_session_then_it_is_gone(client: Client) -> None:
    session = client.create_session()
    client.delete_session(session.session_id)
    client.delete_session(session.session_id)
    with pytest.raises(NotFoundError):
        client.load_context(session.session_id)


def test_purge_answers_a_receipt_that_can_be_read_back(client: Client) -> None:
    client.create_session()
    receipt = client.purge_customer()
    assert receipt.sessions_deleted == 1
    assert client.get_receipt(receipt.receipt_id) == receipt


async def test_async_client_has_the_same_methods(async_client: AsyncClient) -> None:
    session = await async_client.create_session()
    first = await async_client.append_turn(session.session_id, "user", "hello", response_id="a-1")
    again = await async_client.append_turn(session.session_id, "user", "hello", response_id="a-1")
    assert (first.duplicate, again.duplicate, again.turn_index) == (False, True, first.turn_index)
    loaded = await async_client.load_context(session.session_id)
    assert (await async_client.load_context(session.session_id)).not_modified
    assert [t.content for t in loaded.turns] == ["hello"]
    assert [t.turn_index async for t in async_client.iter_turns(session.session_id, page_size=1)] == [1]
    assert [s.session_id async for s in async_client.iter_sessions()] == [session.session_id]
