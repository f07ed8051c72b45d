"""The sandbox backend interface, in the manner of jupyter_client's kernel provisioners:
a backend knows *where* a sandbox runs (create, list, destroy); everything else talks to
the sandbox through its run folder, whatever the backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

#: The label saying what a sandbox is for (a pool's, a session's, a benchmark's...).
LABEL_ROLE = "code-interpreter.role"


@dataclass(frozen=True)
class SandboxSpec:
    """What a new sandbox gets."""

    memory_limit_bytes: int
    cpus: float
    pids_limit: int
    data_size_bytes: int
    # Labels are stored on the container, so a restarted service can re-adopt it.
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SandboxRecord:
    """A sandbox as its backend knows it."""

    id: str
    run_dir: Path  # host folder holding the kernel's ipc sockets and the agent socket
    connection_file: Path  # host-side kernel connection file
    labels: dict[str, str]
    running: bool
    #: Why it has stopped for good (exited), in words; None while it runs or may run
    #: again (being created, paused).
    stopped_because: str | None = None
    #: The OCI runtime that runs it: "runc" or "runsc" (gVisor).
    runtime: str = "runc"


@dataclass(frozen=True)
class EngineCapacity:
    """What the machine behind a backend can give its sandboxes in all."""

    memory_bytes: int
    cpus: int


class SandboxBackend(Protocol):
    async def create(self, spec: SandboxSpec) -> SandboxRecord:
        """Start a sandbox; return once its container runs (its kernel may still be starting)."""
        ...

    async def destroy(self, sandbox_id: str) -> None:
        """Remove the sandbox and its run folder. Unknown ids are ignored."""
        ...

    async def list(self) -> list[SandboxRecord]:
        """Every sandbox of this service that still exists, running or not. Raises
        ``EngineUnavailable`` when the engine cannot say."""
        ...

    async def inspect(self, sandbox_id: str) -> SandboxRecord | None:
        """One sandbox, with why it stopped if it did; None when it no longer exists.
        Raises ``EngineUnavailable`` when the engine cannot say."""
        ...

    async def capacity(self) -> EngineCapacity:
        """The memory and CPUs the sandboxes share."""
        ...

    async def ping(self) -> None:
        """Return once the engine answers; raise ``EngineUnavailable`` if it does not."""
        ...

    async def close(self) -> None: ...
