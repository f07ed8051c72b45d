"""What Chat Completions remembers between requests, in SQLite in the data folder:

- per conversation so far (``transcript.conversation_key``): the harmony messages the
  model saw and wrote (its code and the tool's outputs included, which the client's
  Markdown copy cannot give back exactly), the conversation's date and first id (so the
  prompt prefix, and its cache, stay the same), and its container;
- per explicit key (``transcript.affinity_key``): the container it names.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interpreter.storage import sqlite_errors

SCHEMA = """
CREATE TABLE IF NOT EXISTS chat_states (
    key TEXT PRIMARY KEY,
    container_id TEXT,
    messages TEXT,
    conversation_date TEXT,
    root_id TEXT,
    updated_at REAL NOT NULL
);
"""


@dataclass
class ConversationState:
    container_id: str | None
    messages: list[dict[str, Any]]  # harmony Message.to_dict() of the conversation
    conversation_date: str
    root_id: str


class ChatStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite_errors(self.path, "chat store"), self._lock:
            return self._db.execute(sql, args).fetchall()

    async def conversation(self, key: str) -> ConversationState | None:
        rows = await asyncio.to_thread(
            self._run,
            "SELECT container_id, messages, conversation_date, root_id FROM chat_states "
            "WHERE key = ? AND messages IS NOT NULL",
            (key,),
        )
        if not rows:
            return None
        container_id, messages, date, root_id = rows[0]
        return ConversationState(container_id, json.loads(messages), date, root_id)

    async def save_conversation(self, key: str, state: ConversationState) -> None:
        await asyncio.to_thread(
            self._run,
            "INSERT OR REPLACE INTO chat_states VALUES (?, ?, ?, ?, ?, ?)",
            (
                key,
                state.container_id,
                json.dumps(state.messages),
                state.conversation_date,
                state.root_id,
                time.time(),
            ),
        )

    async def container(self, key: str) -> str | None:
        rows = await asyncio.to_thread(
            self._run, "SELECT container_id FROM chat_states WHERE key = ?", (key,)
        )
        return rows[0][0] if rows else None

    async def set_container(self, key: str, container_id: str) -> None:
        await asyncio.to_thread(
            self._run,
            "INSERT OR REPLACE INTO chat_states (key, container_id, updated_at) VALUES (?, ?, ?)",
            (key, container_id, time.time()),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()
