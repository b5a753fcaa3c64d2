"""What gets indexed: turns and ingest events become chunks with deterministic ids.

A chunk's id is `<org>:<client>:<kind>:<item id>:<chunk no>` and depends on nothing else, so
indexing the same event or turn again overwrites the same documents: redelivery never
duplicates. Org, client and kind hold no ':' and the chunk number is the last field, so the id
parses back even though an item id may hold ':' (grammar: switchboard_common.memory.ItemId).

Kinds: `event` (ingested from other systems), `user` (what the user typed in a turn) and
`assistant` (what the assistant answered). A turn becomes two items under the same item id, one
per side, so an assistant's answer is stored apart from the question and can be weighed below
the facts it was supposed to come from (a wrong answer must not become memory's top hit)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from switchboard_common.memory import IngestEvent, MemoryKind, SourceType, Visibility
from switchboard_common.turns import TurnCompleted


@dataclass(frozen=True)
class Chunk:
    org: str
    client: str
    item_id: str
    chunk: int
    n_chunks: int
    source: SourceType
    visibility: Visibility
    user: str | None
    title: str
    text: str
    occurred_at: float
    """Unix seconds."""
    conversation: str | None = None
    kind: MemoryKind = "event"
    metadata: dict[str, Any] = field(default_factory=dict)
    """The producer's metadata of an event, returned with every hit of it."""
    context: str = ""
    """What came just before the item in its thread (IngestEvent.context), first chunk only."""

    @property
    def doc_id(self) -> str:
        return doc_id(self.org, self.client, self.kind, self.item_id, self.chunk)

    @property
    def embed_text(self) -> str:
        return f"{self.title}\n{self.text}" if self.title else self.text


def doc_id(org: str, client: str, kind: str, item_id: str, chunk: int) -> str:
    # Turns and events live in different id spaces; the kind keeps them apart.
    return f"{org}:{client}:{kind}:{item_id}:{chunk}"


_SENTENCE_END = re.compile(r"(?<=[.!?\n])\s+")


def chunk_text(text: str, max_chars: int, overlap: int) -> list[str]:
    """Split on sentence ends into pieces of at most `max_chars` (a sentence longer than that is
    cut hard), with about `overlap` characters repeated at each start so a fact that straddles
    a boundary is still found whole in one chunk."""
    text = text.strip()
    if len(text) <= max_chars:
        return [text] if text else []
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        while len(sentence) > max_chars:
            pieces.append(sentence[:max_chars])
            sentence = sentence[max_chars - overlap:]
        if sentence:
            pieces.append(sentence)
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 1 + len(piece) > max_chars:
            chunks.append(current)
            tail = current[-overlap:] if overlap else ""
            # Start the overlap at a word boundary so no chunk begins mid-word.
            tail = tail[tail.find(" ") + 1:] if " " in tail else ""
            current = f"{tail} {piece}".strip() if len(tail) + 1 + len(piece) <= max_chars \
                else piece
        else:
            current = f"{current} {piece}".strip()
    if current:
        chunks.append(current)
    return chunks


def chunks_from_event(event: IngestEvent, max_chars: int, overlap: int) -> list[Chunk]:
    texts = chunk_text(event.text, max_chars, overlap)
    return [
        Chunk(org=event.org_id, client=event.client_id, item_id=event.event_id, chunk=i,
              n_chunks=len(texts), source=event.source, visibility=event.visibility,
              user=event.user_id, title=event.title, text=t,
              occurred_at=event.occurred_at.timestamp(),
              conversation=str(event.metadata.get("conversation_id") or "") or None,
              metadata=event.metadata, context=event.context if i == 0 else "")
        for i, t in enumerate(texts)
    ]


def chunks_from_turn(turn: TurnCompleted, max_chars: int, overlap: int, private: bool
                     ) -> list[Chunk]:
    chunks: list[Chunk] = []
    for kind, text in (("user", turn.user_text), ("assistant", turn.assistant_text)):
        texts = chunk_text(text, max_chars, overlap)
        chunks += [
            Chunk(org=turn.org_id, client=turn.client_id, item_id=turn.turn_id, chunk=i,
                  n_chunks=len(texts), source="turn",
                  visibility="private" if private else "client", user=turn.user_id,
                  title="", text=t, occurred_at=turn.created_at.timestamp(),
                  conversation=turn.conversation_id, kind=kind)  # type: ignore[arg-type]
            for i, t in enumerate(texts)
        ]
    return chunks
