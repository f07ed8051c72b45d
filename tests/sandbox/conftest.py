"""Fixtures for backend-level tests: the real Docker backend and real sandboxes, without
the session manager or HTTP in between. Every test here runs under each container
runtime the service supports: runc, and gVisor's runsc (`make test` registers it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from interpreter.config import Settings, parse_size
from interpreter.sandboxes.base import SandboxSpec
from interpreter.sandboxes.docker_backend import DockerSandboxBackend
from interpreter.sandboxes.sandbox import Sandbox

# Small enough that a memory hog is killed within a second, large enough for pandas.
SMALL_MEMORY = "384m"

StartSandbox = Callable[..., Awaitable[Sandbox]]
RUNTIMES = ["runc", "runsc"]


def sandbox_spec(settings: Settings, **overrides: Any) -> SandboxSpec:
    values: dict[str, Any] = {
        "memory_limit_bytes": parse_size(SMALL_MEMORY),
        "cpus": settings.cpus,
        "pids_limit": settings.pids_limit,
        "data_size_bytes": parse_size("64m"),
        "labels": {"code-interpreter.role": "test"},
    }
    values.update(overrides)
    return SandboxSpec(**values)


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def backend(
    make_settings: Callable[..., Settings], runtime: str
) -> AsyncIterator[DockerSandboxBackend]:
    """A Docker backend of its own: every container it made is gone after the test."""
    settings = make_settings(sandbox_runtime=runtime)
    docker_backend = DockerSandboxBackend.from_settings(settings)
    docker_backend.check()
    yield docker_backend
    for record in await docker_backend.list():
        await docker_backend.destroy(record.id)
    await docker_backend.close()


@pytest.fixture
async def start_sandbox(
    backend: DockerSandboxBackend, make_settings: Callable[..., Settings]
) -> AsyncIterator[StartSandbox]:
    """Start and connect sandboxes; ``start_sandbox(max_output_bytes=..., **spec)``."""
    settings = make_settings()
    started: list[Sandbox] = []

    async def start(*, max_output_bytes: int = 1_000_000, **spec: Any) -> Sandbox:
        record = await backend.create(sandbox_spec(settings, **spec))
        sandbox = Sandbox(record, max_output_bytes=max_output_bytes, ready_timeout_s=60.0)
        started.append(sandbox)
        await sandbox.connect()
        return sandbox

    yield start
    for sandbox in started:
        await sandbox.close()
        await backend.destroy(sandbox.id)
