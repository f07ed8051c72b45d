"""The subset of vLLM's OpenAI-compatible server that a token-in, token-out client uses
(vLLM 0.10.2 and later), answered by this runner.

- ``POST /v1/completions`` with ``prompt`` a list of token ids, ``return_token_ids``,
  ``stop_token_ids``, ``stream`` (with ``stream_options.include_usage``): server-sent
  chunks whose ``choices[0].token_ids`` are the new ids, a usage chunk with
  ``prompt_tokens_details.cached_tokens``, then ``data: [DONE]``;
- ``POST /tokenize``, ``GET /v1/models`` (with ``max_model_len``), ``GET /health``;
  SGLang answers these two in the same shapes.

Text prompts, ``n`` > 1 and logprobs are vLLM features this runner does not offer: it
answers 400 for them. Errors are vLLM's ``{"error": {"message", "type", "param",
"code"}}`` with the status in ``code``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from model_runner.errors import ModelRunnerError
from model_runner.generator import GenerationRequest, GenerationStream, Generator
from model_runner.harmony import load_encoding

router = APIRouter()


class StreamOptions(BaseModel):
    include_usage: bool = False


class CompletionBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    prompt: list[int] | str
    max_tokens: int = Field(default=16, ge=1)
    temperature: float = Field(default=1.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop_token_ids: list[int] = Field(default_factory=list)
    stream: bool = False
    stream_options: StreamOptions | None = None
    return_token_ids: bool = False
    skip_special_tokens: bool = True
    n: int = 1


class TokenizeBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str
    add_special_tokens: bool = True


def vllm_error(status: int, message: str) -> JSONResponse:
    kind = "BadRequestError" if status == 400 else "InternalServerError"
    body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return JSONResponse(body, status_code=status)


def context_error(served: Generator, prompt: list[int]) -> str | None:
    """vLLM's message for a prompt longer than the context, or None if it fits."""
    context = served.max_context
    if context is not None and len(prompt) >= context:
        return (
            f"This model's maximum context length is {context} tokens. However, your "
            f"request has {len(prompt)} input tokens. Please reduce the length of the input."
        )
    return None


def token_text(token: int, skip_special: bool) -> str:
    encoding = load_encoding()
    if skip_special and encoding.is_special_token(token):
        return ""
    try:
        return encoding.decode([token])
    except Exception:  # a token that is half of a UTF-8 character
        return ""


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


@router.get("/health")
async def health() -> Response:
    return Response(status_code=200)


@router.get("/v1/models")
async def models(request: Request) -> dict[str, Any]:
    served: Generator = request.app.state.generator
    return {
        "object": "list",
        "data": [
            {
                "id": served.name,
                "object": "model",
                "created": int(time.time()),
                "owned_by": "model_runner",
                "max_model_len": served.max_context,
            }
        ],
    }


@router.post("/tokenize")
async def tokenize(body: TokenizeBody, request: Request) -> dict[str, Any]:
    served: Generator = request.app.state.generator
    # Special tokens written in the text are special tokens, as HF tokenizers read them.
    tokens = load_encoding().encode(body.prompt, allowed_special="all")
    return {"count": len(tokens), "max_model_len": served.max_context, "tokens": tokens}


@router.post("/v1/completions", response_model=None)
async def completions(body: CompletionBody, request: Request) -> Response:
    served: Generator = request.app.state.generator
    if isinstance(body.prompt, str):
        return vllm_error(400, "this server takes prompts as token ids only")
    if body.n != 1:
        return vllm_error(400, "this server generates one completion per request (n=1)")
    if not body.prompt:
        return vllm_error(400, "the prompt is empty")
    too_long = context_error(served, body.prompt)
    if too_long:
        return vllm_error(400, too_long)
    stop = frozenset(body.stop_token_ids)
    stream = served.generate(
        GenerationRequest(
            prompt_tokens=body.prompt,
            max_tokens=body.max_tokens,
            stop_tokens=stop,
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
        )
    )
    completion = Completion(body, served.name, stream, stop)
    if body.stream:
        return StreamingResponse(completion.chunks(), media_type="text/event-stream")
    try:
        return JSONResponse(await completion.whole())
    except ModelRunnerError as exc:
        return vllm_error(400 if exc.code == "invalid_request" else 500, str(exc))


class Completion:
    """One completion, answered as vLLM answers it."""

    def __init__(
        self, body: CompletionBody, model: str, stream: GenerationStream, stop: frozenset[int]
    ) -> None:
        self.body = body
        self.model = model
        self.stream = stream
        self.stop = stop
        self.id = f"cmpl-{secrets.token_hex(16)}"
        self.created = int(time.time())
        self.tokens: list[int] = []

    def _envelope(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": self.id, "object": "text_completion", "created": self.created,
                "model": self.model, "choices": choices, **extra}  # fmt: skip

    def _finish(self) -> tuple[str, int | None]:
        last = self.tokens[-1] if self.tokens else None
        if last is not None and last in self.stop:
            return "stop", last
        return "length", None

    def _usage(self) -> dict[str, Any]:
        usage = self.stream.usage
        return {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        }

    async def whole(self) -> dict[str, Any]:
        async for token in self.stream:
            self.tokens.append(token)
        reason, stop_reason = self._finish()
        choice: dict[str, Any] = {
            "index": 0,
            "text": "".join(token_text(t, self.body.skip_special_tokens) for t in self.tokens),
            "logprobs": None,
            "finish_reason": reason,
            "stop_reason": stop_reason,
        }
        if self.body.return_token_ids:
            choice["prompt_token_ids"] = self.body.prompt
            choice["token_ids"] = self.tokens
        return self._envelope([choice], usage=self._usage())

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            first = True
            async for token in self.stream:
                self.tokens.append(token)
                choice: dict[str, Any] = {
                    "index": 0,
                    "text": token_text(token, self.body.skip_special_tokens),
                    "logprobs": None,
                    "finish_reason": None,
                    "stop_reason": None,
                }
                if self.body.return_token_ids:
                    if first:
                        choice["prompt_token_ids"] = self.body.prompt
                    choice["token_ids"] = [token]
                first = False
                yield _sse(self._envelope([choice]))
            reason, stop_reason = self._finish()
            last: dict[str, Any] = {
                "index": 0,
                "text": "",
                "logprobs": None,
                "finish_reason": reason,
                "stop_reason": stop_reason,
            }
            if self.body.return_token_ids:
                last["token_ids"] = []
            yield _sse(self._envelope([last]))
            options = self.body.stream_options
            if options is not None and options.include_usage:
                yield _sse(self._envelope([], usage=self._usage()))
        except ModelRunnerError as exc:
            code = 400 if exc.code == "invalid_request" else 500
            yield _sse({"error": {"message": str(exc), "type": "BadRequestError", "param": None,
                                  "code": code}})  # fmt: skip
        finally:
            await self.stream.aclose()
        yield _sse("[DONE]")
