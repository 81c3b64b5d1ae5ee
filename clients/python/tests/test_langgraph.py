"""tidewater as the conversation store of a LangGraph graph (examples/langgraph_agent.py): the
context is loaded into the graph's messages before the model, and the run's messages appended
after it."""

from __future__ import annotations

import sys
from pathlib import Path

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from tidewater_client import Client

sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))
from langgraph_agent import build_graph


def test_a_graph_loads_the_context_before_the_model_and_appends_after(client: Client) -> None:
    session = client.create_session()
    client.append_turn(session.session_id, "user", "I collect Frieren.")
    client.append_turn(session.session_id, "assistant", "Noted!")
    seen: list[list[BaseMessage]] = []

    def model(messages: list[BaseMessage]) -> AIMessage:
        seen.append(list(messages))
        return AIMessage(f"reply {len(seen)}")

    # With LangGraph's own checkpointer too: it keeps its state, tidewater keeps the conversation.
    graph = build_graph(client, model, checkpointer=InMemorySaver())
    config = {"configurable": {"session_id": session.session_id, "thread_id": session.session_id}}
    graph.invoke({"messages": [HumanMessage("Is volume 3 out?")]}, config)
    graph.invoke({"messages": [HumanMessage("Reserve it.")]}, config)

    assert [m.content for m in seen[0]] == ["I collect Frieren.", "Noted!", "Is volume 3 out?"]
    assert [m.content for m in seen[1]] == [
        "I collect Frieren.",
        "Noted!",
        "Is volume 3 out?",
        "reply 1",
        "Reserve it.",
    ]
    turns = client.load_context(session.session_id).turns
    assert [t.content for t in turns] == [
        "I collect Frieren.",
        "Noted!",
        "Is volume 3 out?",
        "reply 1",
        "Reserve it.",
        "reply 2",
    ]
