"""Wire shapes of the Containers API and our execute extension. OpenAI's own shapes come
from the ``openai`` SDK's types; only what OpenAI does not define is typed here."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal, get_args

from openai.types.container_retrieve_response import ContainerRetrieveResponse, NetworkPolicy
from openai.types.container_retrieve_response import ExpiresAfter as ExpiresAfterWire
from openai.types.containers.file_retrieve_response import FileRetrieveResponse
from pydantic import BaseModel, ConfigDict, Field

from interpreter.sandboxes.outputs import DisplayOutput, ExecutionResult, Output
from interpreter.sessions.manager import FileRecord, Session


class ExpiresAfter(BaseModel):
    anchor: Literal["last_active_at"] = "last_active_at"
    minutes: int = Field(ge=1)


MemoryLimit = Literal["1g", "4g", "16g", "64g"]


class NetworkPolicyDisabled(BaseModel):
    """Sandboxes have no network at all: an allowlist is refused, not silently ignored."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["disabled"]


class ContainerCreateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(default="", max_length=256)
    expires_after: ExpiresAfter | None = None
    file_ids: list[str] = Field(default_factory=list, max_length=100)
    memory_limit: str | None = None
    network_policy: NetworkPolicyDisabled | None = None


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=1_000_000)
    timeout: float | None = Field(default=None, gt=0, description="seconds")
    stream: bool = False


class FileCreateJSON(BaseModel):
    file_id: str


def container_object(session: Session, status: str = "running") -> dict[str, Any]:
    info = session.info
    # The SDK's type allows OpenAI's four sizes; a server default may be another one
    # (512m), which is reported as it is.
    standard = info.memory_limit in get_args(MemoryLimit)
    body = ContainerRetrieveResponse(
        id=info.id,
        object="container",
        name=info.name,
        status=status,
        created_at=info.created_at,
        last_active_at=int(session.last_active_at),
        expires_after=ExpiresAfterWire(anchor="last_active_at", minutes=round(info.ttl_s / 60)),
        memory_limit=info.memory_limit if standard else None,  # type: ignore[arg-type]
        network_policy=NetworkPolicy(type="disabled"),
    ).model_dump(exclude_none=True)
    body["memory_limit"] = info.memory_limit
    return body


def container_file_object(session_id: str, record: FileRecord) -> dict[str, Any]:
    return FileRetrieveResponse(
        id=record.id,
        object="container.file",
        container_id=session_id,
        path=record.path,
        bytes=record.bytes,
        created_at=record.created_at,
        source=record.source,
    ).model_dump()


def output_object(output: Output) -> dict[str, Any]:
    body = asdict(output)
    if isinstance(output, DisplayOutput):
        body["type"] = "result" if output.is_result else "display"
        if not output.is_result:
            body.pop("execution_count")
    return body


def execution_object(result: ExecutionResult) -> dict[str, Any]:
    return {
        "object": "container.execution",
        "status": result.status,
        "execution_count": result.execution_count,
        "duration_ms": round(result.duration_s * 1000, 3),
        "outputs": [output_object(o) for o in result.outputs],
        "truncated": result.truncated,
        "kernel_restarted": result.kernel_restarted,
        "notice": result.notice,
    }


def page(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


def paginate(
    items: list[dict[str, Any]], *, after: str | None, limit: int, order: str
) -> dict[str, Any]:
    """Cursor pagination as OpenAI's list endpoints do it (``after`` an id, ``order``)."""
    if order == "desc":
        items = items[::-1]
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    return page(items[:limit], has_more=len(items) > limit)
