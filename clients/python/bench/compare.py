"""tidewater beside LangChain's own DynamoDB history (langchain-community's
`DynamoDBChatMessageHistory`), on one workload against one DynamoDB Local: a 1,000-turn
conversation, two concurrent writers and a retried write. Prints what happened, measured, as
Markdown. The OpenAI Agents SDK ships no DynamoDB session to compare (its
`agents.extensions.memory` holds SQLite, SQLAlchemy, Redis, MongoDB, Dapr and an encrypting
wrapper), so LangChain's stands for the frameworks' DynamoDB backends.

Run by `PY_RUN=bench scripts/test-python-client.sh`, which starts the stack and sets
TIDEWATER_API, TIDEWATER_DYNAMODB (DynamoDB Local itself) and TIDEWATER_TOKEN_BIN."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
from langchain_community.chat_message_histories import DynamoDBChatMessageHistory
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, messages_to_dict

from tidewater_client import Client
from tidewater_client.langchain import TidewaterChatMessageHistory

TURNS = 1000
WRITER_APPENDS = 100
TABLE = "langchain-history"
# About what a shop assistant's exchange holds: a question, and an answer of a few sentences.
USER_TEXT = "Is volume {n} of Frieren back in stock, and is there a paperback edition as well as the digital one?"
ASSISTANT_TEXT = (
    "Yes: volume {n} is back, 4 paperback copies at the Shibuya store and unlimited digital copies. "
    "The paperback is 1,320 yen and ships in two days; the digital edition is 990 yen and is yours at once. "
    "Shall I reserve a paperback, or add the digital edition to your cart?"
)


def message(n: int) -> BaseMessage:
    return HumanMessage(USER_TEXT.format(n=n)) if n % 2 == 0 else AIMessage(ASSISTANT_TEXT.format(n=n))


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def ms(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ms" if values else "-"


def langchain_history(session_id: str) -> DynamoDBChatMessageHistory:
    return DynamoDBChatMessageHistory(TABLE, session_id, endpoint_url=os.environ["TIDEWATER_DYNAMODB"])


def create_langchain_table() -> None:
    boto3.client("dynamodb", endpoint_url=os.environ["TIDEWATER_DYNAMODB"]).create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "SessionId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "SessionId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def long_conversation(history: Any, load: Callable[[], int]) -> dict[str, Any]:
    """Appends TURNS messages one by one; stops at the first failure."""
    latencies: list[float] = []
    failure = ""
    for n in range(TURNS):
        try:
            elapsed, _ = timed(lambda n=n: history.add_message(message(n)))
        except Exception as error:  # what the backend raises is what we report
            failure = f"turn {n + 1}: {type(error).__name__}: {str(error)[:120]}"
            break
        latencies.append(elapsed)
    load_ms, loaded = timed(load)
    return {
        "stored": len(latencies),
        "failure": failure,
        "first_100": ms(latencies[:100]),
        "last_100": ms(latencies[-100:]),
        "load": f"{load_ms:.1f} ms",
        "loaded": loaded,
    }


def concurrent_writers(make: Callable[[], Any], count: Callable[[], int]) -> dict[str, Any]:
    """Two threads, each appending WRITER_APPENDS messages to the same conversation."""
    errors: list[str] = []

    def writer(tag: str) -> None:
        history = make()
        for n in range(WRITER_APPENDS):
            try:
                history.add_message(HumanMessage(f"writer {tag} message {n}"))
            except Exception as error:
                errors.append(f"{type(error).__name__}")

    threads = [threading.Thread(target=writer, args=(tag,)) for tag in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"sent": 2 * WRITER_APPENDS, "stored": count(), "errors": len(errors)}


def main() -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
    api = os.environ["TIDEWATER_API"]
    token = subprocess.run(
        [os.environ["TIDEWATER_TOKEN_BIN"], f"bench-{uuid.uuid4().hex[:8]}"], check=True, capture_output=True, text=True
    ).stdout.strip()
    client = Client(api, token=token)
    create_langchain_table()
    rows: dict[str, dict[str, Any]] = {}

    # 1. A 1,000-turn conversation.
    lc = langchain_history(str(uuid.uuid4()))
    rows["langchain long"] = long_conversation(lc, lambda: len(lc.messages))
    item = boto3.client("dynamodb", endpoint_url=os.environ["TIDEWATER_DYNAMODB"]).get_item(
        TableName=TABLE, Key={"SessionId": {"S": lc.session_id}}
    )
    rows["langchain long"]["item_kb"] = len(json.dumps(messages_to_dict(lc.messages))) / 1024 if "Item" in item else 0
    sid = client.create_session().session_id
    tw = TidewaterChatMessageHistory(client, sid)
    rows["tidewater long"] = long_conversation(tw, lambda: len(client.load_context(sid).turns))
    rows["tidewater long"]["exported"] = sum(1 for _ in client.iter_turns(sid, page_size=500))

    # 2. Two concurrent writers.
    lc_id = str(uuid.uuid4())
    rows["langchain writers"] = concurrent_writers(
        lambda: langchain_history(lc_id), lambda: len(langchain_history(lc_id).messages)
    )
    sid2 = client.create_session().session_id
    rows["tidewater writers"] = concurrent_writers(
        lambda: TidewaterChatMessageHistory(Client(api, token=token), sid2),
        lambda: sum(1 for _ in client.iter_turns(sid2, page_size=500)),
    )
    indices = [t.turn_index for t in client.iter_turns(sid2, page_size=500)]
    rows["tidewater writers"]["gap_free"] = indices == list(range(1, len(indices) + 1))

    # 3. A retried write: the first attempt was stored, its answer lost, and the caller retries.
    lc3 = langchain_history(str(uuid.uuid4()))
    retried = HumanMessage("Reserve one paperback, please.")
    lc3.add_message(retried)
    lc3.add_message(retried)  # the retry: add_messages has no idempotency key
    rows["langchain retry"] = {"stored": len(lc3.messages)}
    sid3 = client.create_session().session_id
    first = client.append_turn(sid3, "user", "Reserve one paperback, please.")
    again = client.append_turn(sid3, "user", "Reserve one paperback, please.", response_id=first.response_id)
    rows["tidewater retry"] = {
        "stored": client.load_context(sid3).session.turn_count,  # type: ignore[union-attr]
        "answer": f"turn_index {again.turn_index}, duplicate {str(again.duplicate).lower()}",
    }
    client.close()
    report(rows)


def report(rows: dict[str, dict[str, Any]]) -> None:
    lcl, twl = rows["langchain long"], rows["tidewater long"]
    lcw, tww = rows["langchain writers"], rows["tidewater writers"]
    print("| workload | LangChain `DynamoDBChatMessageHistory` | tidewater (`TidewaterChatMessageHistory`) |")
    print("|---|---|---|")
    print(
        f"| {TURNS:,}-turn conversation: turns stored | {lcl['stored']:,} "
        f"({lcl['failure'] or 'no failure'}) | {twl['stored']:,} "
        f"({twl['failure'] or 'no failure'}; export holds {twl['exported']:,}) |"
    )
    print(
        f"| median append, first 100 / last 100 stored | {lcl['first_100']} / {lcl['last_100']} "
        f"| {twl['first_100']} / {twl['last_100']} |"
    )
    print(
        f"| then load the history | {lcl['load']}, {lcl['loaded']} messages in one "
        f"{lcl['item_kb']:.0f} KiB item | {twl['load']}, {twl['loaded']} turns (the unsummarised tail) |"
    )
    print(
        f"| two concurrent writers, {WRITER_APPENDS} appends each | {lcw['stored']} of {lcw['sent']} stored "
        f"({lcw['errors']} errors) | {tww['stored']} of {tww['sent']} stored ({tww['errors']} errors), "
        f"indices gap-free: {str(tww['gap_free']).lower()} |"
    )
    print(
        f"| a retried write | stored {rows['langchain retry']['stored']} times | stored "
        f"{rows['tidewater retry']['stored']} time; the retry answered {rows['tidewater retry']['answer']} |"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
