"""The FastAPI application: built once per process, its services made in the lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from interpreter import preflight
from interpreter.api import chat, containers, errors, files, health, models, notebooks, responses
from interpreter.api import protocol as containers_wire
from interpreter.chat import wire as chat_wire
from interpreter.chat.serving import ChatCompletionsService
from interpreter.chat.store import ChatStore
from interpreter.config import Settings
from interpreter.files import FileStore
from interpreter.mcp import http as mcp_http
from interpreter.metrics import Metrics
from interpreter.responses import serving as responses_serving
from interpreter.responses import wire as responses_wire
from interpreter.responses.serving import ResponsesService
from interpreter.responses.store import ResponseStore
from interpreter.sandboxes.base import SandboxBackend
from interpreter.sessions.manager import SessionManager
from model_runner.generator import Generator
from model_runner.startup import build_deferred_models

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"


def create_app(
    settings: Settings | None = None,
    *,
    backend: SandboxBackend | None = None,
    generator: Generator | None = None,
    cleanup_on_exit: bool = False,
    warm_up_model: bool | None = None,
) -> FastAPI:
    """The service. ``backend`` defaults to Docker (checked: ``preflight``) and
    ``generator`` to the model that ``settings.model`` names (none when it is "none"); the
    app closes both when it stops. ``cleanup_on_exit`` also ends every session at
    shutdown (otherwise they outlive the process, to be re-adopted). ``warm_up_model``:
    generate one token before serving (``ResponsesService.warm_up``); by default only
    for a model the app loads itself, not one handed in (a test's double keeps its script)."""
    settings = settings or Settings()
    warm_up = generator is None if warm_up_model is None else warm_up_model

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics = Metrics()
        # The model first: a model that cannot load stops start-up before any sandbox
        # exists, so nothing is left behind.
        model = generator or await _load_model(settings)
        sandbox_backend = backend or preflight.sandbox_backend(settings)
        manager = SessionManager(settings, sandbox_backend, metrics)
        store = ResponseStore(settings.data_dir / "responses.sqlite3")
        files_store = FileStore(settings.data_dir / "files", settings.max_upload_bytes)
        responses_service = (
            ResponsesService(settings, manager, model, store, files_store, metrics)
            if model is not None
            else None
        )
        chat_store = ChatStore(settings.data_dir / "chat.sqlite3")
        # Chat Completions runs the Responses API's loop, and shares its admission gate.
        chat_service = (
            ChatCompletionsService(
                responses_service.builder, chat_store, responses_service.until_stopping
            )
            if responses_service is not None
            else None
        )
        app.state.settings = settings
        app.state.metrics = metrics
        app.state.sessions = manager
        app.state.files = files_store
        app.state.responses = responses_service
        app.state.chat = chat_service
        app.state.api_keys = settings.api_key_set()
        app.state.started_at = int(time.time())
        try:
            if responses_service is not None and warm_up:
                await responses_service.warm_up()
            await manager.start()
            if responses_service is not None:
                await responses_service.recover()
            async with mcp_running:
                yield
        finally:
            if responses_service is not None:
                await responses_service.close()
            store.close()
            chat_store.close()
            await manager.close(end_sessions=cleanup_on_exit)
            await sandbox_backend.close()
            closer = getattr(model, "aclose", None)
            if closer is not None:
                await closer()

    app = FastAPI(title="Code Interpreter", version="0.1.0", lifespan=lifespan)
    errors.install(app)
    mcp_running = mcp_http.mount(app, settings.host)
    app.include_router(health.router)
    app.include_router(containers.router)
    app.include_router(files.router)
    app.include_router(responses.router)
    app.include_router(chat.router)
    app.include_router(models.router)
    app.include_router(notebooks.router)
    _mount_ui(app)
    return app


def load_model(settings: Settings) -> Generator | None:
    """The model ``settings.model`` names (None for "none"). Blocks while a local model
    loads or a served one is probed; raises ``ModelRunnerError`` if it cannot."""
    if settings.model == "none":
        return None
    from model_runner.loading import load_generator
    from model_runner.startup import warm_up

    log.info("loading model %s", settings.model)
    served = "://" in settings.model
    if not served and settings.model_process == "own":
        from model_runner.process import RunnerProcess

        return RunnerProcess.start(
            settings.model, threads=settings.model_threads, max_batch=settings.model_concurrency
        )
    options: dict[str, int] = {}
    if settings.model_concurrency:
        options["concurrency" if served else "max_batch"] = settings.model_concurrency
    if settings.model_threads and not served:
        options["cpu_threads"] = settings.model_threads
    generator = load_generator(settings.model, **options)
    if not served:
        warm_up(generator)
    return generator


#: The modules that name the ``openai`` SDK types the service sends.
WIRE_MODULES = (responses_wire, chat_wire, containers_wire, responses_serving)


def build_wire_types() -> int:
    """Build the SDK types the service sends now, not during the first response (the SDK
    defers each schema to first use). Returns how many were built."""
    return build_deferred_models(*WIRE_MODULES)


async def _load_model(settings: Settings) -> Generator | None:
    # Loading a local model blocks for a while: keep the event loop free.
    return await asyncio.to_thread(load_model, settings)


def _mount_ui(app: FastAPI) -> None:
    """The notebook page at ``/`` and its assets under ``/ui/``. No catch-all mount, so
    routers included after this one still win their paths and unknown paths stay 404."""

    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)
    app.mount("/ui", _RevalidatedFiles(directory=STATIC_DIR), name="ui")


class _RevalidatedFiles(StaticFiles):
    """Assets a browser must revalidate (a cheap 304), so an upgraded service never runs
    with yesterday's scripts from the browser's heuristic cache."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response
