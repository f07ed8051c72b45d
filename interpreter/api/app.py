"""The FastAPI application: built once per process, its services made in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from interpreter.api import containers, errors, files, health
from interpreter.config import Settings
from interpreter.files import FileStore
from interpreter.metrics import Metrics
from interpreter.sandboxes.base import SandboxBackend
from interpreter.sessions.manager import SessionManager

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    backend: SandboxBackend | None = None,
    cleanup_on_exit: bool = False,
) -> FastAPI:
    """The service. ``backend`` defaults to Docker; ``cleanup_on_exit`` also ends every
    session at shutdown (otherwise they outlive the process, to be re-adopted)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics = Metrics()
        sandbox_backend = backend or _docker_backend(settings)
        manager = SessionManager(settings, sandbox_backend, metrics)
        await manager.start()
        app.state.settings = settings
        app.state.metrics = metrics
        app.state.sessions = manager
        app.state.files = FileStore(settings.data_dir / "files", settings.max_upload_bytes)
        app.state.api_keys = settings.api_key_set()
        try:
            yield
        finally:
            await manager.close(end_sessions=cleanup_on_exit)
            if backend is None:
                await sandbox_backend.close()

    app = FastAPI(title="Code Interpreter", version="0.1.0", lifespan=lifespan)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(containers.router)
    app.include_router(files.router)
    return app


def _docker_backend(settings: Settings) -> SandboxBackend:
    from interpreter.sandboxes.docker_backend import DockerSandboxBackend

    backend = DockerSandboxBackend(
        image=settings.sandbox_image,
        run_root=settings.run_root,
        service_name=settings.service_name,
        docker_host=settings.docker_host or None,
        preimport=settings.preimport,
    )
    backend.check()
    return backend
