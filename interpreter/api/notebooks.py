"""Notebooks out: a container's executed cells, or a response conversation, as ``.ipynb``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from interpreter.api.auth import current_owner
from interpreter.api.responses import responses_service
from interpreter.notebooks.export import MEDIA_TYPE, container_notebook, conversation_notebook
from interpreter.sessions.manager import SessionManager

router = APIRouter(prefix="/v1", tags=["notebooks"])
Owner = Annotated[str | None, Depends(current_owner)]


def _download(text: str, name: str) -> Response:
    return Response(
        text,
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}.ipynb"'},
    )


@router.get("/containers/{container_id}/notebook")
async def container(container_id: str, request: Request, owner: Owner) -> Response:
    sessions: SessionManager = request.app.state.sessions
    session = await sessions.find(container_id, owner)
    return _download(await container_notebook(session), container_id)


@router.get("/responses/{response_id}/notebook")
async def response(response_id: str, request: Request, owner: Owner) -> Response:
    store = responses_service(request).store
    return _download(await conversation_notebook(store, response_id, owner), response_id)
