"""Responses API: create (plain, streamed, background), retrieve, delete, cancel,
input items; and the images that executions displayed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from interpreter.api.auth import current_owner
from interpreter.api.protocol import page
from interpreter.api.sse import sse_event, with_keepalives
from interpreter.errors import InterpreterError
from interpreter.responses.protocol import ResponsesRequest
from interpreter.responses.serving import ResponsesService

router = APIRouter(prefix="/v1", tags=["responses"])
Owner = Annotated[str | None, Depends(current_owner)]


class ModelUnavailable(InterpreterError):
    status_code = 503
    error_type = "server_error"
    code = "model_unavailable"


def responses_service(request: Request) -> ResponsesService:
    service: ResponsesService | None = request.app.state.responses
    if service is None:
        raise ModelUnavailable(
            "This server runs without a model (INTERPRETER_MODEL=none): the Responses API "
            "is off. The Containers API works."
        )
    return service


@router.post("/responses")
async def create_response(body: ResponsesRequest, request: Request, owner: Owner) -> Response:
    service = responses_service(request)
    turn = await service.prepare(
        body, owner, str(request.base_url), request.headers.get("x-session-affinity")
    )
    await service.begin(turn)
    if body.background:
        return JSONResponse(await service.start_background(turn))
    if not body.stream:
        return JSONResponse(await service.run_to_completion(turn))

    async def sse() -> AsyncIterator[str]:
        async for event in service.events(turn):
            yield sse_event(event["type"], event)

    return StreamingResponse(
        with_keepalives(sse()),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/responses/{response_id}")
async def retrieve_response(response_id: str, request: Request, owner: Owner) -> dict[str, Any]:
    return await responses_service(request).retrieve(response_id, owner)


@router.delete("/responses/{response_id}")
async def delete_response(response_id: str, request: Request, owner: Owner) -> dict[str, Any]:
    await responses_service(request).delete(response_id, owner)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


@router.post("/responses/{response_id}/cancel")
async def cancel_response(response_id: str, request: Request, owner: Owner) -> dict[str, Any]:
    return await responses_service(request).cancel(response_id, owner)


@router.get("/responses/{response_id}/input_items")
async def input_items(response_id: str, request: Request, owner: Owner) -> dict[str, Any]:
    # All of a response's input items, oldest first: a turn's input is small.
    return page(await responses_service(request).input_items(response_id, owner), has_more=False)


@router.get("/code_interpreter/images/{image_id}")
async def image(image_id: str, request: Request) -> Response:
    # Image ids are unguessable capabilities: <img> tags cannot send bearer keys.
    media_type, data = await responses_service(request).store.image(image_id)
    return Response(
        data, media_type=media_type, headers={"Cache-Control": "private, max-age=86400"}
    )
