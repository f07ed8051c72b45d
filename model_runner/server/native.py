"""The runner's native wire format, and its routes.

``POST /v1/generate`` takes a ``GenerateBody`` and answers newline-delimited JSON:

    {"prompt_tokens": 812, "cached_tokens": 790, "model": "gpt-oss-20b"}   once, first
    {"token": 200005}                                                       one per token
    {"done": true, "completion_tokens": 57}                                 last

or, if the model rejects the request or fails, a last line ``{"error": {...}}``. A
stream that ends without ``done`` or ``error`` was cut (the server went away). A body
that does not parse (missing fields, ``max_tokens`` < 1...) gets HTTP 400 with the same
``{"error": {...}}`` object. The server starts streaming at once, before the first token,
because only a started response notices a client leaving during a long prefill.

``GET /v1/model`` says what the generator declares: name, concurrency, default
temperature, context.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from model_runner.errors import (
    ERRORS_BY_CODE,
    GenerationFailed,
    InvalidGenerationRequest,
    ModelRunnerError,
)
from model_runner.generator import GenerationRequest, GenerationStream, Generator

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"

router = APIRouter()


class GenerateBody(BaseModel):
    """``GenerationRequest`` as JSON."""

    prompt_tokens: list[int] = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    stop_tokens: list[int] = Field(default_factory=list)
    temperature: float = Field(default=1.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    cache_key: str | None = None
    background: bool = False

    def to_request(self) -> GenerationRequest:
        return GenerationRequest(
            prompt_tokens=self.prompt_tokens,
            max_tokens=self.max_tokens,
            stop_tokens=frozenset(self.stop_tokens),
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            cache_key=self.cache_key,
            background=self.background,
        )

    @classmethod
    def from_request(cls, request: GenerationRequest) -> GenerateBody:
        """Unvalidated: the server checks it, and answers the typed error a local
        generator would raise."""
        return cls.model_construct(
            prompt_tokens=list(request.prompt_tokens),
            max_tokens=request.max_tokens,
            stop_tokens=sorted(request.stop_tokens),
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
            cache_key=request.cache_key,
            background=request.background,
        )


class ModelInfo(BaseModel):
    name: str
    concurrency: int
    default_temperature: float
    max_context: int | None


def error_body(exc: ModelRunnerError) -> dict[str, Any]:
    """The OpenAI-style error object for ``exc``."""
    kind = "invalid_request_error" if isinstance(exc, InvalidGenerationRequest) else "server_error"
    return {"error": {"message": str(exc), "type": kind, "code": exc.code, "param": None}}


def error_from_body(body: Any, fallback: str) -> ModelRunnerError:
    """The typed error an ``{"error": {...}}`` body stands for (a client's inverse of
    ``error_body``); ``fallback`` is the message when the body is not of that shape."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ModelRunnerError(fallback)
    cls = ERRORS_BY_CODE.get(str(error.get("code")), ModelRunnerError)
    return cls(str(error.get("message") or fallback))


def _line(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


async def _ndjson(stream: GenerationStream, model: str) -> AsyncIterator[bytes]:
    try:
        started = False
        async for token in stream:
            if not started:
                # Usage is known once the first token is out; send it ahead of that token.
                usage = stream.usage
                yield _line(
                    {
                        "prompt_tokens": usage.prompt_tokens,
                        "cached_tokens": usage.cached_tokens,
                        "model": model,
                    }
                )
                started = True
            yield _line({"token": token})
        yield _line({"done": True, "completion_tokens": stream.usage.completion_tokens})
    except ModelRunnerError as exc:
        yield _line(error_body(exc))
    except Exception as exc:
        log.exception("generation failed")
        yield _line(error_body(GenerationFailed(f"{type(exc).__name__}: {exc}")))
    finally:
        await stream.aclose()


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, str]:
    return {"status": "ok", "model": request.app.state.generator.name}


@router.get("/v1/model")
async def model_info(request: Request) -> ModelInfo:
    served: Generator = request.app.state.generator
    return ModelInfo(
        name=served.name,
        concurrency=served.concurrency,
        default_temperature=served.default_temperature,
        max_context=served.max_context,
    )


@router.post("/v1/generate")
async def generate(body: GenerateBody, request: Request) -> StreamingResponse:
    served: Generator = request.app.state.generator
    stream = served.generate(body.to_request())
    # Stream at once, even before the first token: only a started response notices
    # a client that leaves during a long prefill or while queued for the model.
    return StreamingResponse(_ndjson(stream, served.name), media_type=NDJSON)
