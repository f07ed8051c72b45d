"""Containers API (OpenAI's shapes) plus execute, interrupt and restart, and questions to
the kernel: completions, help and variables (ours)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from interpreter.api import protocol
from interpreter.api.auth import current_owner
from interpreter.api.errors import error_body
from interpreter.api.sse import sse_event, with_keepalives
from interpreter.api.uploads import read_multipart_file
from interpreter.errors import InterpreterError, InvalidRequest
from interpreter.files import FileStore
from interpreter.sandboxes.outputs import Output
from interpreter.sessions.manager import Session, SessionManager

router = APIRouter(prefix="/v1/containers", tags=["containers"])

Owner = Annotated[str | None, Depends(current_owner)]


def sessions(request: Request) -> SessionManager:
    return request.app.state.sessions


def file_store(request: Request) -> FileStore:
    return request.app.state.files


@router.post("")
async def create_container(
    body: protocol.ContainerCreateRequest, request: Request, owner: Owner
) -> dict[str, Any]:
    store = file_store(request)
    # Check every file before claiming a sandbox, so a bad id costs nothing.
    uploads = [store.content(file_id, owner) for file_id in body.file_ids]
    manager = sessions(request)
    session = await manager.create(
        owner=owner,
        name=body.name,
        ttl_minutes=body.expires_after.minutes if body.expires_after else None,
        memory_limit=body.memory_limit,
    )
    try:
        for stored, content in uploads:
            await manager.upload(session, stored.filename, content)
    except InterpreterError:
        await manager.delete(session.id, owner)
        raise
    return protocol.container_object(session)


@router.get("")
async def list_containers(
    request: Request,
    owner: Owner,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    items = [protocol.container_object(s) for s in sessions(request).list(owner)]
    return protocol.paginate(items, after=after, limit=limit, order=order)


@router.get("/{container_id}")
async def retrieve_container(container_id: str, request: Request, owner: Owner) -> dict[str, Any]:
    return protocol.container_object(await sessions(request).find(container_id, owner))


@router.delete("/{container_id}")
async def delete_container(container_id: str, request: Request, owner: Owner) -> dict[str, Any]:
    await sessions(request).delete(container_id, owner)
    return {"id": container_id, "object": "container.deleted", "deleted": True}


# -- files -------------------------------------------------------------------------------


@router.post("/{container_id}/files")
async def create_file(
    container_id: str,
    request: Request,
    owner: Owner,
) -> dict[str, Any]:
    """Multipart ``file`` upload, or JSON ``{"file_id": ...}`` copying a Files API file."""
    manager = sessions(request)
    session = await manager.find(container_id, owner)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = protocol.FileCreateJSON.model_validate_json(await request.body())
        except ValueError as exc:
            raise InvalidRequest("Expected a JSON body with 'file_id'.", param="file_id") from exc
        stored, content = file_store(request).content(body.file_id, owner)
        record = await manager.upload(session, stored.filename, content)
        return protocol.container_file_object(session.id, record)
    upload = await read_multipart_file(request, manager.settings.max_upload_bytes)
    record = await manager.upload(session, upload.filename, upload.content)
    return protocol.container_file_object(session.id, record)


@router.get("/{container_id}/files")
async def list_files(
    container_id: str,
    request: Request,
    owner: Owner,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    manager = sessions(request)
    session = await manager.find(container_id, owner)
    records = await manager.list_files(session)
    items = [protocol.container_file_object(session.id, r) for r in records]
    return protocol.paginate(items, after=after, limit=limit, order=order)


@router.get("/{container_id}/files/{file_id}")
async def retrieve_file(
    container_id: str, file_id: str, request: Request, owner: Owner
) -> dict[str, Any]:
    manager = sessions(request)
    session = await manager.find(container_id, owner)
    if file_id not in {r.id for r in session.info.files.values()}:
        await manager.list_files(session)  # it may be a file the code wrote just now
    return protocol.container_file_object(session.id, await manager.get_file(session, file_id))


@router.get("/{container_id}/files/{file_id}/content")
async def file_content(container_id: str, file_id: str, request: Request, owner: Owner) -> Response:
    manager = sessions(request)
    session = await manager.find(container_id, owner)
    record, content = await manager.read_file(session, file_id)
    name = record.path.rsplit("/", 1)[-1]
    return Response(
        content,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}"},
    )


@router.delete("/{container_id}/files/{file_id}")
async def delete_file(
    container_id: str, file_id: str, request: Request, owner: Owner
) -> dict[str, Any]:
    manager = sessions(request)
    session = await manager.find(container_id, owner)
    await manager.delete_file(session, file_id)
    return {"id": file_id, "object": "container.file.deleted", "deleted": True}


# -- execution (beyond OpenAI) -------------------------------------------------------------


@router.post("/{container_id}/execute")
async def execute(
    container_id: str, body: protocol.ExecuteRequest, request: Request, owner: Owner
) -> Response:
    manager = sessions(request)
    session = await manager.find(container_id, owner)
    if not body.stream:
        result = await manager.execute(session, body.code, timeout_s=body.timeout)
        return JSONResponse(protocol.execution_object(result))
    return StreamingResponse(
        with_keepalives(_execution_events(manager, session, body)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _execution_events(
    manager: SessionManager, session: Session, body: protocol.ExecuteRequest
) -> AsyncIterator[str]:
    """Server-sent events: ``output`` for each output as it happens, then ``done``."""
    queue: asyncio.Queue[Output] = asyncio.Queue()

    async def on_output(output: Output) -> None:
        queue.put_nowait(output)

    task = asyncio.create_task(
        manager.execute(session, body.code, timeout_s=body.timeout, on_output=on_output)
    )
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield sse_event("output", protocol.output_object(getter.result()))
                continue
            getter.cancel()
            while not queue.empty():
                yield sse_event("output", protocol.output_object(queue.get_nowait()))
            break
        try:
            result = task.result()
        except InterpreterError as exc:
            yield sse_event("error", error_body(exc.message, exc.error_type, exc.param, exc.code))
            return
        summary = protocol.execution_object(result)
        summary.pop("outputs")
        yield sse_event("done", summary)
    finally:
        if not task.done():
            # The client went away: cancelling interrupts the kernel (state kept).
            task.cancel()


@router.post("/{container_id}/interrupt")
async def interrupt(container_id: str, request: Request, owner: Owner) -> dict[str, Any]:
    manager = sessions(request)
    session = await manager.find(container_id, owner)
    return {"id": session.id, "interrupted": await manager.interrupt(session)}


@router.post("/{container_id}/restart")
async def restart(container_id: str, request: Request, owner: Owner) -> dict[str, Any]:
    manager = sessions(request)
    session = await manager.find(container_id, owner)
    await manager.restart(session)
    return {"id": session.id, "restarted": True}


# -- questions to the kernel (beyond OpenAI) ----------------------------------------------


@router.post("/{container_id}/complete")
async def complete(
    container_id: str, body: protocol.CompleteRequest, request: Request, owner: Owner
) -> dict[str, Any]:
    """The kernel's completions at ``cursor_pos``; 409 ``kernel_busy`` while code runs."""
    manager = sessions(request)
    session = await manager.find(container_id, owner)
    return protocol.completion_object(await manager.complete(session, body.code, body.cursor))


@router.post("/{container_id}/inspect")
async def inspect(
    container_id: str, body: protocol.InspectRequest, request: Request, owner: Owner
) -> dict[str, Any]:
    """The kernel's help for the name at ``cursor_pos`` (``detail_level`` 1: with source)."""
    manager = sessions(request)
    session = await manager.find(container_id, owner)
    found = await manager.inspect(session, body.code, body.cursor, body.detail_level)
    return protocol.inspection_object(found)


@router.get("/{container_id}/variables")
async def variables(container_id: str, request: Request, owner: Owner) -> dict[str, Any]:
    """The user's variables (name, type, shape, length, dtype, a short value), read by a
    silent execution that leaves the execution count as it was."""
    manager = sessions(request)
    session = await manager.find(container_id, owner)
    return protocol.variables_object(await manager.variables(session))
