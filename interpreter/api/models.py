"""``GET /v1/models``: the one model this server runs, as OpenAI's Models API shows it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from interpreter.api.auth import current_owner
from interpreter.errors import NotFound

router = APIRouter(prefix="/v1/models", tags=["models"])
Owner = Annotated[str | None, Depends(current_owner)]


def _models(request: Request) -> list[dict[str, Any]]:
    service = request.app.state.responses
    if service is None:
        return []
    settings = request.app.state.settings
    return [
        {
            "id": settings.model,
            "object": "model",
            "created": request.app.state.started_at,
            "owned_by": "code-interpreter",
            # Ours: what the spec resolved to (a checkpoint's own name, or a runner's).
            "name": service.generator.name,
        }
    ]


@router.get("")
async def list_models(request: Request, owner: Owner) -> dict[str, Any]:
    return {"object": "list", "data": _models(request)}


@router.get("/{model_id:path}")
async def retrieve_model(model_id: str, request: Request, owner: Owner) -> dict[str, Any]:
    for model in _models(request):
        if model["id"] == model_id:
            return model
    raise NotFound(f"The model '{model_id}' does not exist on this server.", param="model")
