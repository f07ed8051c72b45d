"""Wire shapes of a served model runner (``python -m model_runner serve``).

``POST /v1/generate`` takes a ``GenerateBody`` and answers newline-delimited JSON:

    {"prompt_tokens": 812, "cached_tokens": 790, "model": "gpt-oss-20b"}   once, first
    {"token": 200005}                                                       one per token
    {"done": true, "completion_tokens": 57}                                 last

or, if the model rejects the request or fails, a last line ``{"error": {...}}``. A
stream that ends without ``done`` or ``error`` was cut (the server went away). A body
that does not parse (missing fields, ``max_tokens`` < 1...) gets HTTP 400 with the same
``{"error": {...}}`` object. The server starts streaming at once, before the first token,
because only a started response notices a client leaving during a long prefill.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from model_runner.errors import ERRORS_BY_CODE, InvalidGenerationRequest, ModelRunnerError
from model_runner.generator import GenerationRequest


class GenerateBody(BaseModel):
    """``GenerationRequest`` as JSON."""

    prompt_tokens: list[int] = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    stop_tokens: list[int] = Field(default_factory=list)
    temperature: float = Field(default=1.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    cache_key: str | None = None

    def to_request(self) -> GenerationRequest:
        return GenerationRequest(
            prompt_tokens=self.prompt_tokens,
            max_tokens=self.max_tokens,
            stop_tokens=frozenset(self.stop_tokens),
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            cache_key=self.cache_key,
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
        )


class ModelInfo(BaseModel):
    name: str


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
