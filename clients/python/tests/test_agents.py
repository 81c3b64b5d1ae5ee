"""`TidewaterSession` under the OpenAI Agents SDK's own `Runner`, with the SDK's scripted model
(agents.testing): no network, no keys."""

from __future__ import annotations

from typing import Any

from agents import Agent, Runner, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call

from tidewater_client import AsyncClient, Client
from tidewater_client.agents import TidewaterSession


@function_tool
def stock(title: str) -> str:
    """How many copies of a title are in stock."""
    return f"{title}: 4 copies"


def types_of(items: list[Any]) -> list[str]:
    return [str(item.get("type", "message")) for item in items]


async def test_second_run_sees_the_first_runs_items_tool_call_and_result_included(
    client: Client, async_client: AsyncClient
) -> None:
    created = await async_client.create_session()
    session = TidewaterSession(client, created.session_id, async_client=async_client)
    model = ScriptedModel(
        [
            [function_call("stock", {"title": "Frieren 3"}, call_id="call-1")],
            [assistant_message("Frieren 3: 4 copies in stock.")],
            [assistant_message("Reserved one for you.")],
        ]
    )
    agent = Agent(name="shop", instructions="Answer about stock.", model=model, tools=[stock])

    first = await Runner.run(agent, "Is Frieren 3 in stock?", session=session)
    assert first.final_output == "Frieren 3: 4 copies in stock."
    second = await Runner.run(agent, "Reserve one.", session=session)
    assert second.final_output == "Reserved one for you."

    seen = model.calls[-1].input
    assert types_of(seen) == ["message", "function_call", "function_call_output", "message", "message"]
    assert seen[1]["call_id"] == "call-1" and seen[2]["call_id"] == "call-1"
    assert seen[2]["output"] == "Frieren 3: 4 copies"
    assert seen[-1]["content"] == "Reserve one."

    turns = (await async_client.load_context(created.session_id)).turns
    assert [t.role for t in turns] == ["user", "assistant", "tool", "assistant", "user", "assistant"]
    assert turns[1].content == 'calls stock({"title":"Frieren 3"})'


async def test_get_items_with_a_limit_answers_the_newest(client: Client) -> None:
    created = client.create_session()
    session = TidewaterSession(client, created.session_id)
    await session.add_items([{"role": "user", "content": f"m{n}"} for n in range(5)])
    assert [i["content"] for i in await session.get_items(limit=2)] == ["m3", "m4"]
    assert len(await session.get_items()) == 5


async def test_pop_item_retracts_the_newest_and_clear_session_empties_it(client: Client) -> None:
    created = client.create_session()
    session = TidewaterSession(client, created.session_id)
    await session.add_items([{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}])

    assert await session.pop_item() == {"role": "assistant", "content": "two"}
    assert await session.pop_item() == {"role": "user", "content": "one"}
    assert await session.pop_item() is None
    assert await session.get_items() == []
    # Retracted turns keep their index, and the export shows them, marked.
    exported = list(client.iter_turns(created.session_id))
    assert [(t.turn_index, t.retracted_at is not None) for t in exported] == [(1, True), (2, True)]

    await session.add_items([{"role": "user", "content": "three"}])
    assert [i["content"] for i in await session.get_items()] == ["three"]
    await session.clear_session()
    assert await session.get_items() == []
    await session.add_items([{"role": "user", "content": "again"}])
    assert [i["content"] for i in await session.get_items()] == ["again"]
