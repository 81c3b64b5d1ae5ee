"""tidewater as the conversation store of a LangGraph agent: a node that loads the context into
the graph's messages before the model runs, and a node that appends what the run added.

    memory = TidewaterMemory(client)
    graph = StateGraph(TidewaterState)
    graph.add_node("load", memory.load)
    graph.add_node("model", call_model)
    graph.add_node("save", memory.save)
    graph.add_edge(START, "load"); graph.add_edge("load", "model")
    graph.add_edge("model", "save"); graph.add_edge("save", END)
    graph.compile().invoke({"messages": [HumanMessage("hi")]}, {"configurable": {"session_id": sid}})

The session is `config["configurable"]["session_id"]`. `load` replaces the graph's messages
with tidewater's context followed by the messages this run brought in, so a checkpointer may
keep its own state without doubling the history; `save` appends every message after the
loaded context (the run's input and what the model and tools added) exactly once."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage, RemoveMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import MessagesState
from langgraph.graph.message import REMOVE_ALL_MESSAGES

from .async_client import AsyncClient
from .client import Client
from .langchain import TidewaterChatMessageHistory


class TidewaterState(MessagesState, total=False):
    tidewater_loaded: int
    """How many of `messages` came from tidewater's context (the rest are this run's)."""
    tidewater_stored: int
    """How many of `messages` are in tidewater: everything before it is, nothing after."""


class TidewaterMemory:
    def __init__(
        self, client: Client, *, async_client: AsyncClient | None = None, max_turns: int | None = None
    ) -> None:
        self.client = client
        self.async_client = async_client
        self.max_turns = max_turns

    def history(self, config: RunnableConfig) -> TidewaterChatMessageHistory:
        session_id = (config.get("configurable") or {}).get("session_id")
        if not isinstance(session_id, str):
            raise ValueError('TidewaterMemory needs config={"configurable": {"session_id": ...}}')
        return TidewaterChatMessageHistory(
            self.client, session_id, async_client=self.async_client, max_turns=self.max_turns
        )

    @staticmethod
    def _loaded(state: TidewaterState, context: list[BaseMessage]) -> dict[str, Any]:
        new = state["messages"][state.get("tidewater_stored", 0) :]
        messages: list[BaseMessage] = [RemoveMessage(id=REMOVE_ALL_MESSAGES), *context, *new]
        return {"messages": messages, "tidewater_loaded": len(context), "tidewater_stored": len(context)}

    def load(self, state: TidewaterState, config: RunnableConfig) -> dict[str, Any]:
        return self._loaded(state, self.history(config).messages)

    async def aload(self, state: TidewaterState, config: RunnableConfig) -> dict[str, Any]:
        return self._loaded(state, await self.history(config).aget_messages())

    def save(self, state: TidewaterState, config: RunnableConfig) -> dict[str, Any]:
        added = state["messages"][state.get("tidewater_stored", 0) :]
        self.history(config).add_messages(added)
        return {"tidewater_stored": len(state["messages"])}

    async def asave(self, state: TidewaterState, config: RunnableConfig) -> dict[str, Any]:
        added = state["messages"][state.get("tidewater_stored", 0) :]
        await self.history(config).aadd_messages(added)
        return {"tidewater_stored": len(state["messages"])}
