"""The response store: SQLite in the data folder.

Each stored response keeps its wire body, its input items, and the harmony messages of
the whole conversation through it, so a follow-up (``previous_response_id``) replays
exactly what the model saw and wrote, and the prompt's prefix stays byte-stable for the
prefix cache. Images from executions are stored here too and served by id, and each
response's executions with their full outputs, which its notebook is made of.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from interpreter.errors import NotFound
from interpreter.sandboxes.outputs import (
    ClearOutput,
    DisplayOutput,
    ErrorOutput,
    ExecutionResult,
    Output,
    StreamOutput,
)
from interpreter.sessions.history import ExecutedCell
from interpreter.storage import sqlite_errors

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    owner TEXT,
    created_at REAL NOT NULL,
    body TEXT NOT NULL,
    input_items TEXT NOT NULL,
    messages TEXT NOT NULL,
    conversation_date TEXT NOT NULL,
    container_id TEXT,
    root_id TEXT NOT NULL,
    request TEXT
);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    response_id TEXT NOT NULL,
    media_type TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS images_by_response ON images (response_id);
CREATE TABLE IF NOT EXISTS executions (
    response_id TEXT NOT NULL,
    code TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_response ON executions (response_id);
"""


@dataclass
class StoredResponse:
    id: str
    owner: str | None
    body: dict[str, Any]
    input_items: list[dict[str, Any]]
    messages: list[dict[str, Any]]  # harmony Message.to_dict() of the conversation so far
    conversation_date: str
    container_id: str | None
    root_id: str  # the conversation's first response: its default prefix-cache key
    # What a background response was asked (the request, base URL and affinity), so that
    # one a restart interrupted can be run again.
    request: dict[str, Any] | None = None


UNFINISHED = ("queued", "in_progress")
COLUMNS = (
    "id, owner, body, input_items, messages, conversation_date, container_id, root_id, request"
)


class ResponseStore:
    """Each write is one SQLite transaction: a full disk or a crash leaves every response
    as it was before the write, never half-written."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL keeps every commit safe from a crash of the process (the
        # service's kind of failure) and skips an fsync per write; a power cut may lose
        # the last writes, never corrupt the store.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
        if "request" not in columns:  # a store made before background re-runs
            self._db.execute("ALTER TABLE responses ADD COLUMN request TEXT")
        self._lock = threading.Lock()

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite_errors(self.path, "response store"), self._lock:
            return self._db.execute(sql, args).fetchall()

    async def save(self, response: StoredResponse) -> None:
        await asyncio.to_thread(
            self._run,
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                response.id,
                response.owner,
                time.time(),
                json.dumps(response.body),
                json.dumps(response.input_items),
                json.dumps(response.messages),
                response.conversation_date,
                response.container_id,
                response.root_id,
                json.dumps(response.request) if response.request is not None else None,
            ),
        )

    async def get(self, response_id: str, owner: str | None) -> StoredResponse:
        rows = await asyncio.to_thread(
            self._run, f"SELECT {COLUMNS} FROM responses WHERE id = ?", (response_id,)
        )
        if not rows or rows[0][1] != owner:
            raise NotFound(f"Response with id '{response_id}' not found.")
        return _stored(rows[0])

    async def unfinished(self) -> list[StoredResponse]:
        """Responses stored as queued or in progress: after a restart, those the last
        run of the service did not finish. Oldest first."""
        rows = await asyncio.to_thread(
            self._run,
            f"SELECT {COLUMNS} FROM responses WHERE json_extract(body, '$.status') IN (?, ?) "
            "ORDER BY created_at",
            UNFINISHED,
        )
        return [_stored(row) for row in rows]

    async def delete(self, response_id: str, owner: str | None) -> None:
        await self.get(response_id, owner)
        await asyncio.to_thread(self._run, "DELETE FROM responses WHERE id = ?", (response_id,))
        await asyncio.to_thread(
            self._run, "DELETE FROM images WHERE response_id = ?", (response_id,)
        )
        await asyncio.to_thread(
            self._run, "DELETE FROM executions WHERE response_id = ?", (response_id,)
        )

    async def add_image(
        self, image_id: str, response_id: str, media_type: str, data: bytes
    ) -> None:
        await asyncio.to_thread(
            self._run,
            "INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?)",
            (image_id, response_id, media_type, data),
        )

    async def image(self, image_id: str) -> tuple[str, bytes]:
        rows = await asyncio.to_thread(
            self._run, "SELECT media_type, data FROM images WHERE id = ?", (image_id,)
        )
        if not rows:
            raise NotFound(f"Image '{image_id}' not found.")
        return rows[0][0], rows[0][1]

    async def add_execution(self, response_id: str, code: str, result: ExecutionResult) -> None:
        body = {
            "status": result.status,
            "execution_count": result.execution_count,
            "outputs": [asdict(o) for o in result.outputs],
        }
        await asyncio.to_thread(
            self._run,
            "INSERT INTO executions VALUES (?, ?, ?)",
            (response_id, code, json.dumps(body)),
        )

    async def executions(self, response_id: str) -> list[ExecutedCell]:
        """The response's executions, in the order they ran."""
        rows = await asyncio.to_thread(
            self._run,
            "SELECT code, result FROM executions WHERE response_id = ? ORDER BY rowid",
            (response_id,),
        )
        cells = []
        for code, raw in rows:
            body = json.loads(raw)
            result = ExecutionResult(
                status=body["status"],
                outputs=[_output(o) for o in body["outputs"]],
                execution_count=body["execution_count"],
            )
            cells.append(ExecutedCell(code, result))
        return cells

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _stored(row: tuple[Any, ...]) -> StoredResponse:
    return StoredResponse(
        id=row[0],
        owner=row[1],
        body=json.loads(row[2]),
        input_items=json.loads(row[3]),
        messages=json.loads(row[4]),
        conversation_date=row[5],
        container_id=row[6],
        root_id=row[7],
        request=json.loads(row[8]) if row[8] else None,
    )


def _output(raw: dict[str, Any]) -> Output:
    kind = raw.pop("type")
    if kind == "stream":
        return StreamOutput(**raw)
    if kind == "display":
        return DisplayOutput(**raw)
    if kind == "error":
        return ErrorOutput(**raw)
    return ClearOutput()
