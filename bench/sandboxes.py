"""Sandboxes for the benchmarks that work straight on the Docker backend, one backend
per runtime, with the service's settings."""

from __future__ import annotations

from pathlib import Path

from interpreter.config import Settings
from interpreter.sandboxes.docker_backend import DockerSandboxBackend
from interpreter.sandboxes.sandbox import Sandbox

RUNTIMES = ("runc", "runsc")


def backend_for(settings: Settings, root: Path, bench: str, runtime: str) -> DockerSandboxBackend:
    """A checked backend for ``runtime``, with its own run folder and service name."""
    backend = DockerSandboxBackend.from_settings(
        settings,
        run_root=root / runtime,
        service_name=f"bench-{bench}-{runtime}",
        runtime=runtime,
    )
    backend.check()
    return backend


async def start(backend: DockerSandboxBackend, settings: Settings) -> Sandbox:
    """A new sandbox of the service's default spec, connected and ready."""
    record = await backend.create(settings.sandbox_spec("bench"))
    sandbox = Sandbox(record, max_output_bytes=settings.max_output_bytes, ready_timeout_s=120)
    await sandbox.connect()
    return sandbox
