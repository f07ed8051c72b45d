"""Wire shapes of the Containers API and our execute extension. OpenAI's own shapes come
from the ``openai`` SDK's types; only what OpenAI does not define is typed here."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal, get_args

from openai.types.container_retrieve_response import ContainerRetrieveResponse, NetworkPolicy
from openai.types.container_retrieve_response import ExpiresAfter as ExpiresAfterWire
from openai.types.containers.file_retrieve_response import FileRetrieveResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from interpreter.sandboxes.introspection import Completion, Inspection, Namespace
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


class CodeAtCursor(BaseModel):
    """Code and a cursor in it. As in the Jupyter protocol, ``cursor_pos`` counts
    Unicode code points (Python's string indices), not UTF-16 units; it defaults to the
    end of the code."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=1_000_000)
    cursor_pos: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _cursor_inside(self) -> CodeAtCursor:
        if self.cursor_pos is None:
            self.cursor_pos = len(self.code)
        elif self.cursor_pos > len(self.code):
            raise ValueError("cursor_pos is past the end of the code")
        return self

    @property
    def cursor(self) -> int:
        assert self.cursor_pos is not None
        return self.cursor_pos


class CompleteRequest(CodeAtCursor):
    pass


class InspectRequest(CodeAtCursor):
    detail_level: Literal[0, 1] = 0


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


def completion_object(completion: Completion) -> dict[str, Any]:
    return {
        "object": "container.completion",
        "matches": completion.matches,
        "cursor_start": completion.cursor_start,
        "cursor_end": completion.cursor_end,
        "types": completion.types,
    }


def inspection_object(inspection: Inspection) -> dict[str, Any]:
    return {"object": "container.inspection", "found": inspection.found, "data": inspection.data}


def variables_object(namespace: Namespace) -> dict[str, Any]:
    return {
        "object": "container.variables",
        "execution_count": namespace.execution_count,
        "variables": [asdict(v) for v in namespace.variables],
        "truncated": namespace.truncated,
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
