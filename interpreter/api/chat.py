"""Chat Completions: ``POST /v1/chat/completions``, streamed or whole, with the code
interpreter run by the server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from interpreter.api.auth import current_owner
from interpreter.api.errors import error_body
from interpreter.api.responses import ModelUnavailable
from interpreter.api.sse import with_keepalives
from interpreter.chat.protocol import ChatCompletionRequest
from interpreter.chat.serving import ChatCompletionsService

router = APIRouter(prefix="/v1", tags=["chat"])
Owner = Annotated[str | None, Depends(current_owner)]


def _data(body: dict[str, Any]) -> str:
    # Chat Completions streams bare data lines, without event names.
    return f"data: {json.dumps(body)}\n\n"


@router.post("/chat/completions")
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, owner: Owner
) -> Response:
    service: ChatCompletionsService | None = request.app.state.chat
    if service is None:
        raise ModelUnavailable(
            "This server runs without a model (INTERPRETER_MODEL=none): Chat Completions "
            "is off. The Containers API works."
        )
    turn = await service.prepare(
        body, owner, str(request.base_url), request.headers.get("x-session-affinity")
    )
    if not body.stream:
        return JSONResponse(await service.complete(turn))

    async def sse() -> AsyncIterator[str]:
        async for chunk in service.chunks(turn):
            yield _data(chunk)
        if turn.error is not None:
            # The SDK raises an error found in the stream as an APIError.
            error = turn.error
            yield _data(error_body(error.message, error.error_type, error.param, error.code))
        yield "data: [DONE]\n\n"

    return StreamingResponse(
        with_keepalives(sse()),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
