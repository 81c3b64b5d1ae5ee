"""Typed models of every request and answer body in openapi.yaml, read from and written to JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["user", "assistant", "system", "tool"]
FactKind = Literal["preference", "owns", "profile"]
JsonObject = dict[str, Any]


def _opt(body: JsonObject, name: str) -> Any:
    return body.get(name)


# Requests


@dataclass(frozen=True)
class NewSession:
    """`POST /sessions`. The client always sends a `session_id`, so that a retry is safe."""

    session_id: str | None = None
    page_context: JsonObject | None = None

    def to_json(self) -> JsonObject:
        body: JsonObject = {}
        if self.session_id is not None:
            body["session_id"] = self.session_id
        if self.page_context is not None:
            body["page_context"] = self.page_context
        return body


@dataclass(frozen=True)
class NewTurn:
    """`POST /sessions/{id}/turns`. `response_id` is the idempotency key of the append."""

    response_id: str
    role: Role
    content: str
    intent: str | None = None
    token_count: int | None = None
    item: JsonObject | None = None

    def to_json(self) -> JsonObject:
        body: JsonObject = {"response_id": self.response_id, "role": self.role, "content": self.content}
        for name in ("intent", "token_count", "item"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        return body


@dataclass(frozen=True)
class SessionPatch:
    """`PATCH /sessions/{id}`."""

    page_context: JsonObject

    def to_json(self) -> JsonObject:
        return {"page_context": self.page_context}


# Answers


@dataclass(frozen=True)
class SessionCreated:
    session_id: str
    created_at: str
    expires_at: str

    @classmethod
    def from_json(cls, body: JsonObject) -> SessionCreated:
        return cls(body["session_id"], body["created_at"], body["expires_at"])


@dataclass(frozen=True)
class Session:
    session_id: str
    page_context: JsonObject
    turn_count: int
    created_at: str
    updated_at: str
    expires_at: str
    customer_id: str | None = None

    @classmethod
    def from_json(cls, body: JsonObject) -> Session:
        return cls(
            body["session_id"],
            body.get("page_context") or {},
            body["turn_count"],
            body["created_at"],
            body["updated_at"],
            body["expires_at"],
            _opt(body, "customer_id"),
        )


@dataclass(frozen=True)
class Summary:
    text: str
    through_turn: int

    @classmethod
    def from_json(cls, body: JsonObject | None) -> Summary | None:
        return None if body is None else cls(body["text"], body["through_turn"])


@dataclass(frozen=True)
class Turn:
    turn_index: int
    role: Role
    content: str
    created_at: str
    intent: str | None = None
    token_count: int | None = None
    item: JsonObject | None = None
    retracted_at: str | None = None
    """Only in the export: when the turn was retracted (such turns are never in a context)."""

    @classmethod
    def from_json(cls, body: JsonObject) -> Turn:
        return cls(
            body["turn_index"],
            body["role"],
            body["content"],
            body["created_at"],
            _opt(body, "intent"),
            _opt(body, "token_count"),
            _opt(body, "item"),
            _opt(body, "retracted_at"),
        )


@dataclass(frozen=True)
class UnmergedTurn:
    """A turn an old home region acknowledged and had not replicated before a failover, at an
    index the session's order gives to another turn (or past its count): kept and reported,
    never in a context. Retrying its append (same `response_id`) appends it again."""

    epoch: int
    """The failover epoch it was written under."""
    turn: Turn

    @classmethod
    def from_json(cls, body: JsonObject) -> UnmergedTurn:
        return cls(body["epoch"], Turn.from_json(body))

    @property
    def turn_index(self) -> int:
        return self.turn.turn_index

    @property
    def content(self) -> str:
        return self.turn.content


@dataclass(frozen=True)
class Omitted:
    from_turn: int
    to_turn: int

    @classmethod
    def from_json(cls, body: JsonObject | None) -> Omitted | None:
        return None if body is None else cls(body["from_turn"], body["to_turn"])


@dataclass(frozen=True)
class FactSource:
    session_id: str
    from_turn: int
    to_turn: int


@dataclass(frozen=True)
class Fact:
    fact_id: str
    kind: FactKind
    text: str
    source: FactSource
    updated_at: str

    @classmethod
    def from_json(cls, body: JsonObject) -> Fact:
        source = body["source"]
        return cls(
            body["fact_id"],
            body["kind"],
            body["text"],
            FactSource(source["session_id"], source["from_turn"], source["to_turn"]),
            body["updated_at"],
        )


@dataclass(frozen=True)
class Context:
    """What a chatbot needs to answer: the summary, then the turns after it, oldest first."""

    session: Session | None
    summary: Summary | None
    omitted: Omitted | None
    turns: list[Turn]
    degraded: bool
    customer_memory: list[Fact] | None = None
    etag: str | None = None
    not_modified: bool = False
    """True when this is the cached context, answered again because the server said 304."""
    stale: bool = False
    """True when served from a replica while the session's home region was unreachable
    (`Tidewater-Stale: true`): it may lack what the home acknowledged; never take it as complete."""

    @classmethod
    def from_json(cls, body: JsonObject, etag: str | None, stale: bool = False) -> Context:
        session = body.get("session")
        memory = body.get("customer_memory")
        return cls(
            None if session is None else Session.from_json(session),
            Summary.from_json(body.get("summary")),
            Omitted.from_json(body.get("omitted")),
            [Turn.from_json(t) for t in body.get("turns", [])],
            bool(body.get("degraded", False)),
            None if memory is None else [Fact.from_json(f) for f in memory],
            etag,
            stale=stale,
        )


@dataclass(frozen=True)
class Appended:
    turn_index: int
    duplicate: bool
    redactions: dict[str, int] = field(default_factory=dict)
    response_id: str = ""
    """The idempotency key the append used (made by the client when the caller gave none)."""

    @classmethod
    def from_json(cls, body: JsonObject, response_id: str) -> Appended:
        return cls(body["turn_index"], body["duplicate"], body.get("redactions") or {}, response_id)


@dataclass(frozen=True)
class Retracted:
    """`POST /sessions/{id}/turns/{index}/retract`: the turn is out of the context from now on."""

    turn_index: int
    retracted_at: str

    @classmethod
    def from_json(cls, body: JsonObject) -> Retracted:
        return cls(body["turn_index"], body["retracted_at"])


@dataclass(frozen=True)
class ResumableSession:
    session_id: str
    page_context: JsonObject
    turn_count: int
    updated_at: str
    expires_at: str

    @classmethod
    def from_json(cls, body: JsonObject) -> ResumableSession:
        return cls(
            body["session_id"],
            body.get("page_context") or {},
            body["turn_count"],
            body["updated_at"],
            body["expires_at"],
        )


@dataclass(frozen=True)
class SessionPage:
    sessions: list[ResumableSession]
    next_cursor: str | None
    stale: bool = False
    """True when served from a replica while the session's home region was unreachable
    (`Tidewater-Stale: true`): it may lack what the home acknowledged; never take it as complete."""

    @classmethod
    def from_json(cls, body: JsonObject, stale: bool = False) -> SessionPage:
        return cls([ResumableSession.from_json(s) for s in body["sessions"]], body.get("next_cursor"), stale)


@dataclass(frozen=True)
class TurnPage:
    session: Session
    summary: Summary | None
    turns: list[Turn]
    next_cursor: str | None
    stale: bool = False
    """True when served from a replica while the session's home region was unreachable
    (`Tidewater-Stale: true`): it may lack what the home acknowledged; never take it as complete."""
    unmerged: list[UnmergedTurn] = field(default_factory=list)
    """After a failover: the old home's turns on this page's indices that the order does not hold."""

    @classmethod
    def from_json(cls, body: JsonObject, stale: bool = False) -> TurnPage:
        return cls(
            Session.from_json(body["session"]),
            Summary.from_json(body.get("summary")),
            [Turn.from_json(t) for t in body["turns"]],
            body.get("next_cursor"),
            stale,
            [UnmergedTurn.from_json(t) for t in body.get("unmerged", [])],
        )


@dataclass(frozen=True)
class FactPage:
    facts: list[Fact]
    next_cursor: str | None
    stale: bool = False
    """True when served from a replica while the session's home region was unreachable
    (`Tidewater-Stale: true`): it may lack what the home acknowledged; never take it as complete."""

    @classmethod
    def from_json(cls, body: JsonObject, stale: bool = False) -> FactPage:
        return cls([Fact.from_json(f) for f in body["facts"]], body.get("next_cursor"), stale)


@dataclass(frozen=True)
class Receipt:
    receipt_id: str
    customer_hash: str
    requested_at: str
    completed_at: str
    sessions_deleted: int
    items_deleted: int
    memory_items_deleted: int
    request_id: str

    @classmethod
    def from_json(cls, body: JsonObject) -> Receipt:
        return cls(
            body["receipt_id"],
            body["customer_hash"],
            body["requested_at"],
            body["completed_at"],
            body["sessions_deleted"],
            body["items_deleted"],
            body["memory_items_deleted"],
            body["request_id"],
        )
