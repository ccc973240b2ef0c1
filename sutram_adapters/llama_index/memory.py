"""LlamaIndex memory on Sutram: a chat store, memory blocks, and a ``Memory`` that persists.

- :class:`SutramChatStore` is the ``AsyncDBChatStore`` that LlamaIndex's ``Memory`` uses
  (active and archived messages, counts, deleting and archiving the oldest); every message
  is an episodic Sutram memory, so chat history is also searchable. ``.legacy()`` gives the
  same store as the older ``BaseChatStore`` (``ChatMemoryBuffer``, ``SimpleChatEngine``).
- Memory blocks for ``Memory``: :class:`SutramFactBlock` (semantic facts that outlive the
  process, unlike ``FactExtractionMemoryBlock``'s Python list), :class:`SutramEpisodicBlock`
  (recalls earlier conversation relevant to the current input) and
  :class:`SutramProceduralBlock` (versioned instructions).
- :meth:`SutramMemory.from_defaults` wires them together. It survives a process restart (it
  is all in the database) and a workflow ``Context.to_dict()`` / ``Context.from_dict()``
  round trip: it serializes to its session id, URL, tenant and block settings, and
  reconnects when loaded (llama_index 19228).

>>> memory = SutramMemory.from_defaults(session_id="chat-42", tenant="acme")   # doctest: +SKIP
>>> agent.run("What do I like to drink?", memory=memory)                       # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
import uuid
import warnings
from typing import Any, Literal

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.memory.memory import BaseMemoryBlock, Memory
from llama_index.core.prompts import RichPromptTemplate
from llama_index.core.storage.chat_store.base import BaseChatStore
from llama_index.core.storage.chat_store.base_db import AsyncDBChatStore, MessageStatus

from sutram_adapters.llama_index._message_text import (
    names_of_calls,
    remembered_text,
    tool_result_of,
)
from sutram_core.config import default_url
from sutram_core.memory import MemoryKind, MemoryRecord, MemoryStore, Write
from sutram_core.memory.records import now_micros
from sutram_core.memory.sentences import statements

__all__ = [
    "SutramChatStore",
    "SutramEpisodicBlock",
    "SutramFactBlock",
    "SutramLegacyChatStore",
    "SutramMemory",
    "SutramProceduralBlock",
    "close_shared_memories",
]

_STORES: dict[tuple[str, str], MemoryStore] = {}
_STORES_LOCK = threading.Lock()


def memory_for(url: str | None, tenant: str) -> MemoryStore:
    """One MemoryStore per (database, tenant) in this process, shared by every store and block."""
    resolved = url or default_url()
    with _STORES_LOCK:
        store = _STORES.get((resolved, tenant))
        if store is None:
            store = _STORES[(resolved, tenant)] = MemoryStore.from_url(resolved, tenant=tenant)
        return store


def close_shared_memories() -> None:
    """Close the database connections of every shared MemoryStore (they reopen on next use)."""
    with _STORES_LOCK:
        stores = list(_STORES.values())
        _STORES.clear()
    for store in stores:
        store.close()


FACTS_PER_MESSAGE = 32  # statements of one message that SutramFactBlock keeps, at most


def _message_key() -> str:
    # time first, so keys sort in the order messages were added; the suffix keeps two
    # writers of one session apart
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"


def _sequence_key(seq: int) -> str:
    # the message's number in its session first (keys sort in the order messages were
    # added, whatever the clock does); the suffix keeps apart two writers that took the same
    # number at the same instant
    return f"{seq:020d}-{uuid.uuid4().hex[:8]}"


def _sequence_of(key: str) -> int:
    # keys written before sequences were time_ns values of the same form: they sort (and
    # number) before every message added since
    head = key.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


class _SutramBacked:
    """What the chat stores and blocks share: where their memory lives."""

    url: str | None
    tenant: str

    @property
    def memory(self) -> MemoryStore:
        return memory_for(self.url, self.tenant)


class SutramChatStore(_SutramBacked, AsyncDBChatStore):
    """LlamaIndex's ``AsyncDBChatStore`` on Sutram memory (namespace ``("chat", key)``)."""

    url: str | None = Field(default=None, description="Sutram database URL (default SUTRAM_URL).")
    tenant: str = Field(default="default", description="The tenant every message belongs to.")

    @classmethod
    def class_name(cls) -> str:
        return "SutramChatStore"

    def legacy(self) -> SutramLegacyChatStore:
        """The same messages through LlamaIndex's older ``BaseChatStore`` interface."""
        return SutramLegacyChatStore(url=self.url, tenant=self.tenant)

    # -- sync core (run on the database's threads by the async methods) ---------------------

    def _records(self, key: str, status: MessageStatus | None, limit: int | None = None,
                 offset: int | None = None) -> list[MemoryRecord]:
        meta = {"status": status.value} if status is not None else None
        return self.memory.list(("chat", key), metadata=meta, order="key", limit=limit if limit is not None else 10**9,
                                offset=offset or 0)

    def _tool_names(self, key: str, messages: list[ChatMessage]) -> dict[str, str]:
        """Call id -> tool name for the calls these messages answer (in the batch, else among
        the session's latest messages), so a tool's answer is remembered with its tool's name."""
        names = names_of_calls(messages)
        wanted = {r[0] for r in map(tool_result_of, messages) if r is not None and r[0] and not r[1]}
        if wanted - set(names):
            recent = self.memory.list(("chat", key), limit=50)
            names = {**names_of_calls(self._messages(recent)), **names}
        return names

    def _last_sequence(self, key: str) -> int:
        """The number of the session's last message (0 for none)."""
        n = self.memory.count(("chat", key))
        last = self.memory.list(("chat", key), order="key", offset=n - 1, limit=1) if n else []
        return _sequence_of(last[0].key) if last else 0

    def _add(self, key: str, messages: list[ChatMessage], status: MessageStatus) -> None:
        # the value keeps the whole message (tool calls included); the text is what a person
        # would recall of it ("called tool get_weather(city=Paris)"), which search sees.
        # Each message is numbered in its session (1, 2, ...): the number orders the session
        # and is the id delete_message() takes.
        names = self._tool_names(key, messages)
        first = self._last_sequence(key) + 1
        records = [
            self.memory.make_record(("chat", key), _sequence_key(first + i), message.model_dump(mode="json"),
                                    remembered_text(message, names), MemoryKind.EPISODIC,
                                    {"status": status.value, "role": str(message.role.value)},
                                    {"thread_id": key}, None, None)
            for i, message in enumerate(messages)
        ]
        if records:
            self.memory.put_many(records)

    def _delete(self, key: str, records: list[MemoryRecord]) -> None:
        now = now_micros()
        if records:
            self.memory.apply([Write("delete", ("chat", key), r.key, at=now) for r in records])

    @staticmethod
    def _messages(records: list[MemoryRecord]) -> list[ChatMessage]:
        return [ChatMessage.model_validate(r.value) for r in records]

    def _set(self, key: str, messages: list[ChatMessage], status: MessageStatus) -> None:
        self._delete(key, self._records(key, None))
        self._add(key, messages, status)

    def _delete_id(self, key: str, idx: int) -> ChatMessage | None:
        # AsyncDBChatStore: idx is the message's id (here its number in the session)
        found = [r for r in self._records(key, None) if _sequence_of(r.key) == idx]
        if not found:
            return None
        self._delete(key, found[:1])
        return self._messages(found[:1])[0]

    def _delete_at(self, key: str, idx: int) -> ChatMessage | None:
        # BaseChatStore: idx is a position among the key's messages
        records = self._records(key, None)
        if not 0 <= idx < len(records):
            return None
        self._delete(key, [records[idx]])
        return self._messages([records[idx]])[0]

    def _oldest(self, key: str, n: int, archive: bool) -> list[ChatMessage]:
        records = self._records(key, MessageStatus.ACTIVE if archive else None, limit=max(n, 0))
        if archive:
            self.memory.set_metadata([(("chat", key), r.key) for r in records], {"status": MessageStatus.ARCHIVED.value})
        else:
            self._delete(key, records)
        return self._messages(records)

    def _keys(self) -> list[str]:
        return sorted({ns[1] for ns in self.memory.list_namespaces(prefix=("chat",), limit=10**9) if len(ns) == 2})

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await self.memory._offload(fn, *args)

    # -- AsyncDBChatStore -------------------------------------------------------------------

    async def get_messages(self, key: str, status: MessageStatus | None = MessageStatus.ACTIVE,
                           limit: int | None = None, offset: int | None = None) -> list[ChatMessage]:
        return self._messages(await self._run(self._records, key, status, limit, offset))

    async def count_messages(self, key: str, status: MessageStatus | None = MessageStatus.ACTIVE) -> int:
        meta = {"status": status.value} if status is not None else None
        return int(await self._run(lambda: self.memory.count(("chat", key), metadata=meta)))

    async def add_message(self, key: str, message: ChatMessage, status: MessageStatus = MessageStatus.ACTIVE) -> None:
        await self._run(self._add, key, [message], status)

    async def add_messages(self, key: str, messages: list[ChatMessage],
                           status: MessageStatus = MessageStatus.ACTIVE) -> None:
        await self._run(self._add, key, list(messages), status)

    async def set_messages(self, key: str, messages: list[ChatMessage],
                           status: MessageStatus = MessageStatus.ACTIVE) -> None:
        await self._run(self._set, key, list(messages), status)

    async def delete_message(self, key: str, idx: int) -> ChatMessage | None:
        """Delete the message whose id is ``idx`` and return it (None if there is none), as
        ``AsyncDBChatStore`` documents. A message's id is its number in the session: 1 for
        the first message added, 2 for the next, whatever was deleted or archived since."""
        return await self._run(self._delete_id, key, idx)  # type: ignore[no-any-return]

    async def delete_messages(self, key: str, status: MessageStatus | None = None) -> None:
        await self._run(lambda: self._delete(key, self._records(key, status)))

    async def delete_oldest_messages(self, key: str, n: int) -> list[ChatMessage]:
        return await self._run(self._oldest, key, n, False)  # type: ignore[no-any-return]

    async def archive_oldest_messages(self, key: str, n: int) -> list[ChatMessage]:
        return await self._run(self._oldest, key, n, True)  # type: ignore[no-any-return]

    async def get_keys(self) -> list[str]:
        return await self._run(self._keys)  # type: ignore[no-any-return]


class SutramLegacyChatStore(_SutramBacked, BaseChatStore):
    """The same messages as :class:`SutramChatStore`, through LlamaIndex's ``BaseChatStore``
    (for ``ChatMemoryBuffer`` and the chat engines). Positions count every message of a key."""

    url: str | None = Field(default=None)
    tenant: str = Field(default="default")

    @classmethod
    def class_name(cls) -> str:
        return "SutramLegacyChatStore"

    @property
    def _db(self) -> SutramChatStore:
        return SutramChatStore(url=self.url, tenant=self.tenant)

    def set_messages(self, key: str, messages: list[ChatMessage]) -> None:
        self._db._set(key, list(messages), MessageStatus.ACTIVE)

    def get_messages(self, key: str) -> list[ChatMessage]:
        return self._db._messages(self._db._records(key, None))

    def add_message(self, key: str, message: ChatMessage) -> None:
        self._db._add(key, [message], MessageStatus.ACTIVE)

    def delete_messages(self, key: str) -> list[ChatMessage] | None:
        db = self._db
        records = db._records(key, None)
        db._delete(key, records)
        return db._messages(records) or None

    def delete_message(self, key: str, idx: int) -> ChatMessage | None:
        return self._db._delete_at(key, idx)

    def delete_last_message(self, key: str) -> ChatMessage | None:
        db = self._db
        records = db._records(key, None)
        if not records:
            return None
        db._delete(key, records[-1:])
        return db._messages(records[-1:])[0]

    def get_keys(self) -> list[str]:
        return self._db._keys()


# -- memory blocks ---------------------------------------------------------------------------


class _SutramBlock(_SutramBacked, BaseMemoryBlock[str]):
    url: str | None = Field(default=None, description="Sutram database URL (default SUTRAM_URL).")
    tenant: str = Field(default="default", description="The tenant this block reads and writes.")
    namespace: list[str] = Field(description="Where this block's memories live.")
    top_k: int = Field(default=5, description="How many memories to show at most.")
    eager: bool = Field(default=False, description="Receive each message as it is added, not only when "
                        "it leaves short-term memory (SutramMemory honours this).")
    block_type: str = "base"

    def _query(self, messages: list[ChatMessage] | None, kwargs: dict[str, Any]) -> str | None:
        query = kwargs.get("input")
        if isinstance(query, ChatMessage):
            query = query.content
        if not query and messages:
            users = [m for m in messages if m.role == MessageRole.USER and m.content]
            query = users[-1].content if users else None
        return query if isinstance(query, str) and query.strip() else None

    async def _search_lines(self, query: str | None, kind: MemoryKind) -> str:
        hits = await self.memory.asearch(query, namespace=tuple(self.namespace), kind=kind, limit=self.top_k)
        return "\n".join(f"- {h.record.text}" for h in hits if h.record.text)


class SutramFactBlock(_SutramBlock):
    """Semantic facts about the user that persist across sessions and processes.

    Facts come from :meth:`remember`, or from the messages ``Memory`` flushes out of its
    short-term queue: with an ``llm``, one call extracts the facts; without one, each user
    statement is kept as a fact, sentence by sentence: "I take my coffee with oat milk. Where is
    order A-1042?" keeps the first sentence; questions and pleasantries are not facts. At
    most :data:`FACTS_PER_MESSAGE` statements of one message are kept (a pasted document
    is not a list of facts about the user, and each fact costs an embedding).
    Near-duplicates update the existing fact. The block shows the facts most relevant to
    the current input.
    """

    name: str = Field(default="facts")
    block_type: Literal["facts"] = "facts"
    eager: bool = True  # a fact is kept the moment it is said, not when the chat grows long
    llm: Any = Field(default=None, exclude=True, description="An LLM that extracts facts (optional).")

    def remember(self, fact: str) -> MemoryRecord:
        """Store one fact now."""
        return self.memory.add(tuple(self.namespace), fact, kind=MemoryKind.SEMANTIC)

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        return await self._search_lines(self._query(messages, block_kwargs), MemoryKind.SEMANTIC)

    async def _aput(self, messages: list[ChatMessage]) -> None:
        facts: list[str]
        if self.llm is not None:
            transcript = "\n".join(f"{m.role.value}: {m.content}" for m in messages if m.content)
            prompt = ("List the lasting facts about the user in this conversation, one per line, "
                      "or NONE.\n\n" + transcript)
            reply = await self.llm.acomplete(prompt)
            facts = [line.strip("-• ").strip() for line in str(reply).splitlines()]
            facts = [f for f in facts if f and f.upper() != "NONE"]
        else:
            facts = [sentence for m in messages if m.role == MessageRole.USER and m.content
                     for sentence in statements(m.content)[:FACTS_PER_MESSAGE]]
        for fact in facts:
            await self.memory.aadd(tuple(self.namespace), fact, kind=MemoryKind.SEMANTIC)


class SutramEpisodicBlock(_SutramBlock):
    """Earlier conversation recalled by relevance: messages flushed from short-term memory
    are stored as episodes; the block shows those closest to the current input. A tool call
    is remembered as what happened ("assistant: called tool get_weather(city=Paris)", "tool
    get_weather returned: ..."), not as its JSON."""

    name: str = Field(default="episodes")
    block_type: Literal["episodes"] = "episodes"

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        return await self._search_lines(self._query(messages, block_kwargs), MemoryKind.EPISODIC)

    async def _aput(self, messages: list[ChatMessage]) -> None:
        names = names_of_calls(messages)
        records = []
        for m in messages:
            text = remembered_text(m, names)
            if not text.strip():
                continue
            if tool_result_of(m) is None:  # a tool's answer already says "tool X returned"
                text = f"{m.role.value}: {text}"
            records.append(self.memory.make_record(tuple(self.namespace), _message_key(), {"role": m.role.value},
                                                   text, MemoryKind.EPISODIC, None, None, None, None))
        if records:
            await self.memory.aput_many(records)


class SutramProceduralBlock(_SutramBlock):
    """Instructions (how to do things), versioned: :meth:`set_instruction` adds a version;
    the block shows the latest version of each instruction."""

    name: str = Field(default="procedures")
    block_type: Literal["procedures"] = "procedures"
    accept_short_term_memory: bool = False

    def set_instruction(self, key: str, text: str) -> MemoryRecord:
        """Store a new version of instruction ``key``."""
        return self.memory.put(tuple(self.namespace), key, {"text": text}, kind=MemoryKind.PROCEDURAL)

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        records = await self.memory._offload(
            self.memory.list, tuple(self.namespace), kind=MemoryKind.PROCEDURAL, order="key", limit=self.top_k)
        return "\n".join(f"- {r.text}" for r in records if r.text)

    async def _aput(self, messages: list[ChatMessage]) -> None:
        return None


_BLOCKS: dict[str, type[_SutramBlock]] = {
    "facts": SutramFactBlock, "episodes": SutramEpisodicBlock, "procedures": SutramProceduralBlock,
}


class SutramMemory(Memory):
    """LlamaIndex ``Memory`` whose messages and blocks live in Sutram (see the module docstring)."""

    url: str | None = Field(default=None, description="Sutram database URL (default SUTRAM_URL).")
    tenant: str = Field(default="default", description="The tenant of this memory.")
    _reconnected: bool = PrivateAttr(default=False)

    @classmethod
    def class_name(cls) -> str:
        return "SutramMemory"

    @classmethod
    def from_defaults(  # type: ignore[override]
        cls, session_id: str | None = None, *, tenant: str = "default", url: str | None = None,
        user_id: str | None = None, memory_blocks: list[BaseMemoryBlock[Any]] | None = None,
        token_limit: int = 30_000, chat_history: list[ChatMessage] | None = None, **kwargs: Any,
    ) -> SutramMemory:
        """A memory for ``session_id`` in ``tenant``.

        ``user_id`` (default: the session id) scopes the facts and episodes, so a user's facts
        follow them into new sessions. Without ``memory_blocks``: a fact block and an
        episodic block.
        """
        session_id = session_id or f"session-{uuid.uuid4().hex}"
        owner = user_id or session_id
        if memory_blocks is None:
            memory_blocks = [
                SutramFactBlock(url=url, tenant=tenant, namespace=["facts", owner], priority=0),
                SutramEpisodicBlock(url=url, tenant=tenant, namespace=["episodes", owner], priority=1),
            ]
        store = SutramChatStore(url=url, tenant=tenant)
        if chat_history is not None:
            store._set(session_id, list(chat_history), MessageStatus.ACTIVE)
        return cls(session_id=session_id, url=url, tenant=tenant, token_limit=token_limit,
                   memory_blocks=memory_blocks, sql_store=store, **kwargs)

    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        """JSON-ready fields (Memory's own ``to_dict`` keeps enums, which JSON refuses, so a
        workflow Context would silently drop the memory)."""
        data = self.model_dump(mode="json", exclude={"memory_blocks_template", "memory_blocks"}, **kwargs)
        data["memory_blocks_template"] = self.memory_blocks_template.template_str  # its dump does not load back
        # each block with all its fields (the declared type would keep only the base fields)
        data["memory_blocks"] = [b.model_dump(mode="json") for b in self.memory_blocks]
        data["class_name"] = self.class_name()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> SutramMemory:
        """Rebuild from :meth:`to_dict` (what a workflow ``Context`` stores): reconnect to the
        database and recreate Sutram's blocks; blocks of other types cannot be restored from
        their fields and are left out."""
        data = {**data, **kwargs}
        data.pop("class_name", None)
        blocks = []
        for block in data.pop("memory_blocks", None) or []:
            if isinstance(block, BaseMemoryBlock):
                blocks.append(block)
            elif isinstance(block, dict) and block.get("block_type") in _BLOCKS:
                blocks.append(_BLOCKS[block["block_type"]].model_validate(block))
            else:
                warnings.warn(
                    f"memory block {block.get('name') if isinstance(block, dict) else block!r} is not a Sutram "
                    "block and cannot be rebuilt from its fields; add it to the restored memory yourself",
                    stacklevel=2,
                )
        store = SutramChatStore(url=data.get("url"), tenant=data.get("tenant", "default"))
        if isinstance(data.get("memory_blocks_template"), str):
            data["memory_blocks_template"] = RichPromptTemplate(data["memory_blocks_template"])
        data.pop("sql_store", None)
        data.pop("tokenizer_fn", None)
        return cls(memory_blocks=blocks, sql_store=store, **data)

    async def aput(self, message: ChatMessage) -> None:
        """Add a message; eager Sutram blocks (facts) also receive it now."""
        await super().aput(message)
        await self._feed_eager([message])

    async def aput_messages(self, messages: list[ChatMessage]) -> None:
        """Add messages; eager Sutram blocks (facts) also receive them now."""
        await super().aput_messages(messages)
        await self._feed_eager(list(messages))

    async def _feed_eager(self, messages: list[ChatMessage]) -> None:
        for block in self.memory_blocks:
            if isinstance(block, _SutramBlock) and block.eager:
                await block.aput([m.model_copy() for m in messages], session_id=self.session_id)
