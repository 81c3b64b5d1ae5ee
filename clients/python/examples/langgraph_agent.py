"""A LangGraph agent whose conversation lives in tidewater: load the context, run the model,
append what the run added. `model` is any function from messages to an AI message (a chat
model's `invoke` fits)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langgraph.graph import END, START, StateGraph

from tidewater_client import Client
from tidewater_client.langgraph import TidewaterMemory, TidewaterState


def build_graph(client: Client, model: Callable[[list[BaseMessage]], AIMessage], checkpointer: Any = None) -> Any:
    memory = TidewaterMemory(client)

    def call_model(state: TidewaterState) -> dict[str, Any]:
        return {"messages": [model(state["messages"])]}

    graph = StateGraph(TidewaterState)
    graph.add_node("load_memory", memory.load)
    graph.add_node("model", call_model)
    graph.add_node("save_memory", memory.save)
    graph.add_edge(START, "load_memory")
    graph.add_edge("load_memory", "model")
    graph.add_edge("model", "save_memory")
    graph.add_edge("save_memory", END)
    return graph.compile(checkpointer=checkpointer)


if __name__ == "__main__":
    import os
    import sys

    from langchain_core.messages import HumanMessage

    with Client(os.environ.get("TIDEWATER_API", "http://127.0.0.1:3000"), token=os.environ["TOKEN"]) as tidewater:
        session_id = tidewater.create_session().session_id
        graph = build_graph(tidewater, lambda messages: AIMessage(f"(echo) {messages[-1].content}"))
        for line in sys.stdin:
            state = graph.invoke(
                {"messages": [HumanMessage(line.strip())]}, {"configurable": {"session_id": session_id}}
            )
            print(state["messages"][-1].content)
