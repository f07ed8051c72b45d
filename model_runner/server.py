"""HTTP transport for a model runner: serves one ``Generator`` (``protocol`` has the shapes).

Runs the model in its own process, or on a GPU host, apart from the service; the
service then talks to it through ``model_runner.http_client.HTTPGenerator``. A client
that disconnects cancels its generation: Starlette cancels the streaming body, which
closes the ``GenerationStream``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from model_runner.errors import GenerationFailed, InvalidGenerationRequest, ModelRunnerError
from model_runner.generator import GenerationStream, Generator
from model_runner.protocol import GenerateBody, ModelInfo, error_body

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"


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


def create_app(generator: Generator) -> FastAPI:
    """The runner's app, serving ``generator`` (already loaded: loading a model takes
    long and can fail, which the caller should see before it binds a port)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.generator = generator
        yield

    app = FastAPI(title="gpt-oss model runner", lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        message = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        return JSONResponse(error_body(InvalidGenerationRequest(message)), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = {"error": {"message": str(exc.detail), "type": "invalid_request_error",
                          "code": f"http_{exc.status_code}", "param": None}}  # fmt: skip
        return JSONResponse(body, status_code=exc.status_code)

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, str]:
        return {"status": "ok", "model": request.app.state.generator.name}

    @app.get("/v1/model")
    async def model_info(request: Request) -> ModelInfo:
        return ModelInfo(name=request.app.state.generator.name)

    @app.post("/v1/generate")
    async def generate(body: GenerateBody, request: Request) -> StreamingResponse:
        served: Generator = request.app.state.generator
        stream = served.generate(body.to_request())
        # Stream at once, even before the first token: only a started response notices
        # a client that leaves during a long prefill or while queued for the model.
        return StreamingResponse(_ndjson(stream, served.name), media_type=NDJSON)

    return app
