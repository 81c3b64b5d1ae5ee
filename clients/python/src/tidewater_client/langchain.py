"""`TidewaterChatMessageHistory`: tidewater as LangChain's `BaseChatMessageHistory`.

`messages` is the context: the summary as a `SystemMessage`, then the turns after it. Each
message is stored as a turn whose `item` is LangChain's own serialisation of it
(`message_to_dict`), so it comes back as it was sent, tool calls and ids included; `content`
holds its text for summaries and memory. `clear` deletes the session; the next append creates
it again under the same id."""

from __future__ import annotations

import json
from collections.abc import Sequence

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
    messages_from_dict,
)

from .async_client import AsyncClient
from .bridge import SessionBinding, readable
from .client import Client
from .models import Context, Role, Turn

SUMMARY_PREFIX = "Summary of the earlier conversation: "


def role_of(message: BaseMessage) -> Role:
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, ToolMessage):
        return "tool"
    if isinstance(message, ChatMessage) and message.role in ("user", "assistant", "system", "tool"):
        return message.role  # type: ignore[return-value]
    return "assistant"


def content_of(message: BaseMessage) -> str:
    calls = getattr(message, "tool_calls", None) or []
    rendered = "; ".join(f"calls {c['name']}({json.dumps(c['args'], ensure_ascii=False)})" for c in calls)
    return readable(message.text, rendered or f"[{message.type} message]")


def message_of(turn: Turn) -> BaseMessage:
    if turn.item is not None and "type" in turn.item and "data" in turn.item:
        return messages_from_dict([turn.item])[0]
    if turn.role == "user":
        return HumanMessage(turn.content)
    if turn.role == "system":
        return SystemMessage(turn.content)
    if turn.role == "tool":
        return ToolMessage(turn.content, tool_call_id=str((turn.item or {}).get("tool_call_id", "")))
    return AIMessage(turn.content)


def messages_of(context: Context | None) -> list[BaseMessage]:
    if context is None:
        return []
    messages: list[BaseMessage] = []
    if context.summary is not None:
        messages.append(SystemMessage(SUMMARY_PREFIX + context.summary.text))
    messages.extend(message_of(turn) for turn in context.turns)
    return messages


class TidewaterChatMessageHistory(BaseChatMessageHistory):
    """The chat history of one tidewater session. Give `async_client` to run the async
    methods (`aget_messages`, `aadd_messages`, `aclear`) on it; without one they run the sync
    client on a worker thread. `max_turns` bounds the turns `messages` loads."""

    def __init__(
        self,
        client: Client,
        session_id: str,
        *,
        async_client: AsyncClient | None = None,
        max_turns: int | None = None,
    ) -> None:
        self.session = SessionBinding(client, session_id, async_client)
        self.max_turns = max_turns

    @property
    def session_id(self) -> str:
        return self.session.session_id

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        return messages_of(self.session.context(self.max_turns))

    async def aget_messages(self) -> list[BaseMessage]:
        return messages_of(await self.session.acontext(self.max_turns))

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        for message in messages:
            self.session.append(role_of(message), content_of(message), message_to_dict(message))

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        for message in messages:
            await self.session.aappend(role_of(message), content_of(message), message_to_dict(message))

    def clear(self) -> None:
        self.session.delete()

    async def aclear(self) -> None:
        await self.session.adelete()
