"""`TidewaterChatMessageHistory` under LangChain's own `RunnableWithMessageHistory`, sync and
async, with langchain-core's fake chat model."""

from __future__ import annotations

import warnings
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory

from tidewater_client import AsyncClient, Client
from tidewater_client.langchain import TidewaterChatMessageHistory


def chain(replies: list[str], seen: list[list[BaseMessage]]) -> Runnable[Any, Any]:
    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{question}")])

    def record(value: Any) -> Any:
        seen.append(list(value.to_messages()))
        return value

    model = GenericFakeChatModel(messages=iter([AIMessage(r) for r in replies]))
    return prompt | RunnableLambda(record) | model


def with_history(runnable: Runnable[Any, Any], history: Any) -> Runnable[Any, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return RunnableWithMessageHistory(
            runnable,
            lambda session_id: history(session_id),
            input_messages_key="question",
            history_messages_key="history",
        )


def test_two_turns_through_runnable_with_message_history(client: Client) -> None:
    session = client.create_session()
    seen: list[list[BaseMessage]] = []
    runnable = with_history(
        chain(["Yes, 4 copies.", "Reserved."], seen), lambda sid: TidewaterChatMessageHistory(client, sid)
    )
    config = {"configurable": {"session_id": session.session_id}}
    assert runnable.invoke({"question": "Is Frieren 3 in stock?"}, config).content == "Yes, 4 copies."
    assert runnable.invoke({"question": "Reserve one, please."}, config).content == "Reserved."

    context = client.load_context(session.session_id)
    assert [(t.role, t.content) for t in context.turns] == [
        ("user", "Is Frieren 3 in stock?"),
        ("assistant", "Yes, 4 copies."),
        ("user", "Reserve one, please."),
        ("assistant", "Reserved."),
    ]
    # The second model call saw the first exchange, read back from tidewater.
    assert [m.content for m in seen[1]] == ["Is Frieren 3 in stock?", "Yes, 4 copies.", "Reserve one, please."]


async def test_two_turns_through_runnable_with_message_history_async(client: Client, async_client: AsyncClient) -> None:
    session = await async_client.create_session()
    seen: list[list[BaseMessage]] = []
    runnable = with_history(
        chain(["one", "two"], seen),
        lambda sid: TidewaterChatMessageHistory(client, sid, async_client=async_client),
    )
    config = {"configurable": {"session_id": session.session_id}}
    await runnable.ainvoke({"question": "first"}, config)
    await runnable.ainvoke({"question": "second"}, config)
    history = TidewaterChatMessageHistory(client, session.session_id, async_client=async_client)
    messages = await history.aget_messages()
    assert [(type(m), m.content) for m in messages] == [
        (HumanMessage, "first"),
        (AIMessage, "one"),
        (HumanMessage, "second"),
        (AIMessage, "two"),
    ]
    assert [m.content for m in seen[1]] == ["first", "one", "second"]


def test_messages_come_back_as_sent_with_tool_calls_and_roles(client: Client) -> None:
    session = client.create_session()
    history = TidewaterChatMessageHistory(client, session.session_id)
    sent: list[BaseMessage] = [
        SystemMessage("You sell manga."),
        HumanMessage("Stock of Frieren 3?", id="h-1"),
        AIMessage("", tool_calls=[{"name": "stock", "args": {"isbn": "978-1"}, "id": "call-1"}]),
        ToolMessage("4 copies", tool_call_id="call-1"),
        AIMessage("4 copies."),
    ]
    history.add_messages(sent)
    assert history.messages == sent
    turns = client.load_context(session.session_id).turns
    assert [t.role for t in turns] == ["system", "user", "assistant", "tool", "assistant"]
    assert turns[2].content == 'calls stock({"isbn": "978-1"})'


def test_clear_deletes_the_session_and_the_next_message_starts_it_again(client: Client) -> None:
    session = client.create_session()
    history = TidewaterChatMessageHistory(client, session.session_id)
    history.add_user_message("hello")
    history.clear()
    assert history.messages == []
    history.add_ai_message("fresh start")
    assert [m.content for m in history.messages] == ["fresh start"]
