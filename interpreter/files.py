"""A minimal OpenAI Files API store (``file-...`` ids), so ``file_ids`` given to a container
or to the code_interpreter tool have something to name. Blobs and metadata live in the
data folder; a file exists once its metadata does, which is written last, so a crash or a
full disk never leaves a listed file half-written."""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from interpreter.errors import FileNotFound, InterpreterError, InvalidRequest, PayloadTooLarge
from interpreter.storage import remove_partial_writes, write_atomically

FILE_ID = re.compile(r"^file-[0-9a-f]{24}$")


@dataclass
class StoredFile:
    id: str
    filename: str
    bytes: int
    created_at: int
    purpose: str
    owner: str | None


class FileStore:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        root.mkdir(parents=True, exist_ok=True)
        remove_partial_writes(root)
        # Blobs whose metadata never came: a crash, or a full disk, between the two.
        for blob in root.glob("file-*"):
            if FILE_ID.match(blob.name) and not self._meta(blob.name).exists():
                blob.unlink(missing_ok=True)

    def _meta(self, file_id: str) -> Path:
        if not FILE_ID.match(file_id):
            raise FileNotFound(f"No such File object: {file_id}")
        return self.root / f"{file_id}.json"

    def add(self, filename: str, content: bytes, purpose: str, owner: str | None) -> StoredFile:
        if len(content) > self.max_bytes:
            raise PayloadTooLarge(f"The file is larger than the limit of {self.max_bytes} bytes.")
        if not filename or "/" in filename or "\\" in filename or "\x00" in filename:
            raise InvalidRequest(f"Invalid file name {filename!r}.", param="file")
        stored = StoredFile(
            id="file-" + secrets.token_hex(12),
            filename=filename,
            bytes=len(content),
            created_at=int(time.time()),
            purpose=purpose,
            owner=owner,
        )
        write_atomically(self.root / stored.id, content)
        try:
            write_atomically(self._meta(stored.id), json.dumps(asdict(stored)).encode())
        except InterpreterError:
            (self.root / stored.id).unlink(missing_ok=True)
            raise
        return stored

    def get(self, file_id: str, owner: str | None) -> StoredFile:
        try:
            stored = StoredFile(**json.loads(self._meta(file_id).read_text()))
        except FileNotFoundError:
            raise FileNotFound(f"No such File object: {file_id}") from None
        if stored.owner != owner:
            raise FileNotFound(f"No such File object: {file_id}")
        return stored

    def content(self, file_id: str, owner: str | None) -> tuple[StoredFile, bytes]:
        stored = self.get(file_id, owner)
        return stored, (self.root / stored.id).read_bytes()

    def list(self, owner: str | None) -> list[StoredFile]:
        found = []
        for meta in self.root.glob("file-*.json"):
            try:
                stored = StoredFile(**json.loads(meta.read_text()))
            except (OSError, ValueError, TypeError):
                continue  # deleted meanwhile
            if stored.owner == owner:
                found.append(stored)
        return sorted(found, key=lambda f: (f.created_at, f.id))

    def delete(self, file_id: str, owner: str | None) -> None:
        stored = self.get(file_id, owner)
        (self.root / stored.id).unlink(missing_ok=True)
        self._meta(stored.id).unlink(missing_ok=True)
