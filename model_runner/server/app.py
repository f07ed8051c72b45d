"""The runner's HTTP app: one ``Generator`` served in three wire formats.

- native (``native``): ``POST /v1/generate``, what ``engines.runner.RunnerGenerator``
  speaks;
- vLLM's token-in, token-out subset (``vllm_api``): ``POST /v1/completions`` with a
  token-id prompt and ``return_token_ids``, ``POST /tokenize``, ``GET /v1/models``;
- SGLang's (``sglang_api``): ``POST /generate`` with ``input_ids``.

The second and third let the vLLM and SGLang adapters run against a real server where
those engines cannot run (no GPU here); they answer only what the adapters use, in the
engines' shapes. A client that disconnects cancels its generation: Starlette cancels the
streaming body, which closes the ``GenerationStream``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from model_runner.errors import InvalidGenerationRequest
from model_runner.generator import Generator
from model_runner.server import native, sglang_api, vllm_api


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
        return JSONResponse(native.error_body(InvalidGenerationRequest(message)), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = {"error": {"message": str(exc.detail), "type": "invalid_request_error",
                          "code": f"http_{exc.status_code}", "param": None}}  # fmt: skip
        return JSONResponse(body, status_code=exc.status_code)

    app.include_router(native.router)
    app.include_router(vllm_api.router)
    app.include_router(sglang_api.router)
    return app
