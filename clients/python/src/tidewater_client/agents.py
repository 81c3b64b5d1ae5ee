"""`TidewaterSession`: tidewater as the OpenAI Agents SDK's `Session`.

Each input item (a message, a tool call, a tool result, ...) is one turn whose `item` is the
item as the SDK gave it, so `get_items` hands it back unchanged, call ids included; `content`
holds a readable rendering for summaries and memory, and the role is the item's (`tool` for a
tool result). `get_items` answers the context: once tidewater has summarised older turns, the
summary comes first as a system message. `pop_item` retracts the newest turn (it stays in the
export, marked); `clear_session` deletes the session, and the next `add_items` creates it again."""

from __future__ import annotations

import json
from typing import Any

from .async_client import AsyncClient
from .bridge import SessionBinding, readable
from .client import Client
from .models import Context, JsonObject, Role, Turn

SUMMARY_PREFIX = "Summary of the earlier conversation: "
# A context load answers at most 100 turns.
MAX_TURNS = 100


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_text(part.get("text", "")) if isinstance(part, dict) else _text(part) for part in value)
    return "" if value is None else json.dumps(value, ensure_ascii=False)


def role_of(item: JsonObject) -> Role:
    kind = item.get("type", "message")
    if kind == "message" or ("role" in item and kind is None):
        role = item.get("role")
        if role == "developer":
            return "system"
        if role in ("user", "assistant", "system"):
            return role  # type: ignore[no-any-return]
        return "assistant"
    if str(kind).endswith("_output"):
        return "tool"
    return "assistant"


def content_of(item: JsonObject) -> str:
    kind = item.get("type", "message")
    if kind == "message" or "content" in item:
        text = _text(item.get("content"))
    elif kind == "function_call":
        text = f"calls {item.get('name')}({item.get('arguments', '')})"
    elif str(kind).endswith("_output"):
        text = _text(item.get("output"))
    else:
        text = ""
    return readable(text, f"[{kind}]")


def item_of(turn: Turn) -> JsonObject:
    return turn.item if turn.item is not None else {"role": turn.role, "content": turn.content}


def items_of(context: Context | None, limit: int | None) -> list[Any]:
    if context is None:
        return []
    items: list[Any] = []
    if context.summary is not None:
        items.append({"role": "system", "content": SUMMARY_PREFIX + context.summary.text})
    items.extend(item_of(turn) for turn in context.turns)
    return items if limit is None else items[-limit:] if limit > 0 else []


class TidewaterSession:
    """The Agents SDK `Session` protocol over one tidewater session. Give `async_client` to
    call tidewater asynchronously; without one the sync client runs on a worker thread."""

    session_settings: Any = None

    def __init__(self, client: Client, session_id: str, *, async_client: AsyncClient | None = None) -> None:
        self.session_id = session_id
        self.binding = SessionBinding(client, session_id, async_client)

    async def get_items(self, limit: int | None = None) -> list[Any]:
        max_turns = None if limit is None else max(1, min(limit, MAX_TURNS))
        return items_of(await self.binding.acontext(max_turns), limit)

    async def add_items(self, items: list[Any]) -> None:
        for item in items:
            stored: JsonObject = dict(item)
            await self.binding.aappend(role_of(stored), content_of(stored), stored)

    async def pop_item(self) -> Any:
        turn = await self.binding.apop()
        return None if turn is None else item_of(turn)

    async def clear_session(self) -> None:
        await self.binding.adelete()
