"""A minimal OpenAI Files API: upload, list, retrieve, content, delete."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from interpreter.api.auth import current_owner
from interpreter.api.uploads import read_multipart_file
from interpreter.files import FileStore, StoredFile

router = APIRouter(prefix="/v1/files", tags=["files"])
Owner = Annotated[str | None, Depends(current_owner)]


def _store(request: Request) -> FileStore:
    return request.app.state.files


def _object(stored: StoredFile) -> dict[str, Any]:
    body = asdict(stored)
    body.pop("owner")
    return {**body, "object": "file", "status": "processed", "expires_at": None}


@router.post("")
async def upload(request: Request, owner: Owner) -> dict[str, Any]:
    store = _store(request)
    upload = await read_multipart_file(request, store.max_bytes)
    purpose = upload.fields.get("purpose") or "user_data"
    # A thread: the blob may be hundreds of megabytes, and the event loop serves everyone.
    stored = await asyncio.to_thread(store.add, upload.filename, upload.content, purpose, owner)
    return _object(stored)


@router.get("")
async def list_files(request: Request, owner: Owner) -> dict[str, Any]:
    items = [_object(f) for f in _store(request).list(owner)]
    return {"object": "list", "data": items, "has_more": False}


@router.get("/{file_id}")
async def retrieve(file_id: str, request: Request, owner: Owner) -> dict[str, Any]:
    return _object(_store(request).get(file_id, owner))


@router.get("/{file_id}/content")
async def content(file_id: str, request: Request, owner: Owner) -> Response:
    _, data = _store(request).content(file_id, owner)
    return Response(data, media_type="application/octet-stream")


@router.delete("/{file_id}")
async def delete(file_id: str, request: Request, owner: Owner) -> dict[str, Any]:
    _store(request).delete(file_id, owner)
    return {"id": file_id, "object": "file", "deleted": True}
