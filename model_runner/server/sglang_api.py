"""The subset of SGLang's native API that a token-in, token-out client uses (SGLang
0.5.6 and later, without ``--incremental-streaming-output``), answered by this runner.

``POST /generate`` with ``input_ids`` and ``sampling_params`` (``max_new_tokens``,
``temperature``, ``top_p``, ``stop_token_ids``, ``skip_special_tokens``; other keys are
refused, as SGLang refuses unknown ones): streamed, each chunk carries the ids generated
so far (cumulative) and ``meta_info`` with ``prompt_tokens``, ``completion_tokens``,
``cached_tokens`` and, on the last, ``finish_reason``; then ``data: [DONE]``. A streamed
request's error comes in-band (HTTP 200, ``data: {"error": ...}``), as SGLang sends it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from model_runner.errors import InvalidGenerationRequest, ModelRunnerError
from model_runner.generator import GenerationRequest, GenerationStream, Generator
from model_runner.server.vllm_api import token_text

router = APIRouter()


class SamplingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(default=128, ge=1)
    temperature: float = Field(default=1.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop_token_ids: list[int] = Field(default_factory=list)
    skip_special_tokens: bool = True


class GenerateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input_ids: list[int] = Field(min_length=1)
    sampling_params: SamplingParams = Field(default_factory=SamplingParams)
    stream: bool = False
    rid: str | None = None


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


@router.post("/generate", response_model=None)
async def generate(body: GenerateBody, request: Request) -> Response:
    served: Generator = request.app.state.generator
    params = body.sampling_params
    stop = frozenset(params.stop_token_ids)
    context = served.max_context
    problem = None
    if context is not None and len(body.input_ids) >= context:
        problem = (
            f"The input ({len(body.input_ids)} tokens) is longer than the model's context "
            f"length ({context} tokens)."
        )
    run = Generation(body, served, stop)
    if body.stream:
        return StreamingResponse(run.chunks(problem), media_type="text/event-stream")
    if problem:
        return JSONResponse({"error": {"message": problem}}, status_code=400)
    try:
        return JSONResponse(await run.whole())
    except ModelRunnerError as exc:
        status = 400 if isinstance(exc, InvalidGenerationRequest) else 500
        return JSONResponse({"error": {"message": str(exc)}}, status_code=status)


class Generation:
    """One ``/generate`` request, answered as SGLang answers it."""

    def __init__(self, body: GenerateBody, served: Generator, stop: frozenset[int]) -> None:
        self.body = body
        self.served = served
        self.stop = stop
        self.id = body.rid or secrets.token_hex(16)
        self.tokens: list[int] = []
        self.stream: GenerationStream | None = None

    def _open(self) -> GenerationStream:
        params = self.body.sampling_params
        self.stream = self.served.generate(
            GenerationRequest(
                prompt_tokens=self.body.input_ids,
                max_tokens=params.max_new_tokens,
                stop_tokens=self.stop,
                temperature=params.temperature,
                top_p=params.top_p,
            )
        )
        return self.stream

    def _chunk(self, finished: bool) -> dict[str, Any]:
        assert self.stream is not None
        usage = self.stream.usage
        finish: dict[str, Any] | None = None
        if finished:
            last = self.tokens[-1] if self.tokens else None
            if last is not None and last in self.stop:
                finish = {"type": "stop", "matched": last}
            else:
                finish = {"type": "length", "length": len(self.tokens)}
        skip = self.body.sampling_params.skip_special_tokens
        return {
            "text": "".join(token_text(t, skip) for t in self.tokens),
            "output_ids": list(self.tokens),
            "meta_info": {
                "id": self.id,
                "finish_reason": finish,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": len(self.tokens),
                "cached_tokens": usage.cached_tokens,
            },
        }

    async def whole(self) -> dict[str, Any]:
        stream = self._open()
        async for token in stream:
            self.tokens.append(token)
        return self._chunk(finished=True)

    async def chunks(self, problem: str | None) -> AsyncIterator[bytes]:
        if problem is not None:
            yield _sse({"error": {"message": problem, "type": "invalid_request_error",
                                  "code": 400}})  # fmt: skip
            yield _sse("[DONE]")
            return
        stream = self._open()
        try:
            async for token in stream:
                self.tokens.append(token)
                yield _sse(self._chunk(finished=False))
            yield _sse(self._chunk(finished=True))
        except ModelRunnerError as exc:
            code = 400 if isinstance(exc, InvalidGenerationRequest) else 500
            yield _sse({"error": {"message": str(exc), "type": "invalid_request_error",
                                  "code": code}})  # fmt: skip
        finally:
            await stream.aclose()
        yield _sse("[DONE]")
