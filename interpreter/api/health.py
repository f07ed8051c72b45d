"""Liveness, readiness (really runs code) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from interpreter.errors import InterpreterError
from interpreter.sessions.manager import SessionManager

router = APIRouter(tags=["health"])

READY_CHECK_TIMEOUT_S = 20.0
READY_RETRY_AFTER_S = 5


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, Any]:
    manager: SessionManager = request.app.state.sessions
    pool = manager.pool
    body: dict[str, Any] = {
        "status": "ok",
        "sessions": manager.live_count,
        "max_sessions": manager.max_sessions,
        "pool": {
            "ready": pool.ready,
            "starting": pool.starting,
            "target": pool.target,
            "minimum": pool.minimum,
            "maximum": pool.maximum,
            "consecutive_failures": pool.consecutive_failures,
            "last_error": pool.last_error,
        },
    }
    service = request.app.state.responses
    if service is not None:
        body["model"] = {"name": service.generator.name}
        # A local model in a child process (model_runner.process) says how that is.
        process_status = getattr(service.generator, "process_status", None)
        if process_status is not None:
            body["model"]["process"] = process_status()
    return body


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """200 only once ``1+1`` really ran in a sandbox. Uses a short-lived session."""
    manager: SessionManager = request.app.state.sessions
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            session = await manager.create(owner="__readyz__", ttl_minutes=1)
            try:
                result = await manager.execute(session, "1+1", timeout_s=10)
            finally:
                await manager.delete(session.id, "__readyz__")
    except InterpreterError as exc:
        # Why, for an operator: "the Docker engine does not answer: ...", say.
        return JSONResponse(
            {"status": "unavailable", "reason": exc.message},
            status_code=503,
            headers={"Retry-After": str(exc.retry_after_s or READY_RETRY_AFTER_S)},
        )
    except TimeoutError:
        return JSONResponse(
            {
                "status": "unavailable",
                "reason": f"no sandbox ran 1+1 within {READY_CHECK_TIMEOUT_S:g} seconds",
            },
            status_code=503,
            headers={"Retry-After": str(READY_RETRY_AFTER_S)},
        )
    value = next((o.data.get("text/plain") for o in result.outputs if hasattr(o, "data")), None)
    if value != "2":
        return JSONResponse(
            {"status": "unavailable", "reason": f"1+1 gave {value!r}"}, status_code=503
        )
    return JSONResponse({"status": "ready"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    manager: SessionManager = request.app.state.sessions
    request.app.state.metrics.max_sessions.set(manager.max_sessions)
    request.app.state.metrics.pool_target.set(manager.pool.target)
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
