"""A pool of pre-warmed sandboxes: container up, kernel answering, pre-imports done."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from interpreter.metrics import Metrics
from interpreter.sandboxes.base import SandboxBackend, SandboxSpec
from interpreter.sandboxes.sandbox import Sandbox

log = logging.getLogger(__name__)

LABEL_ROLE = "code-interpreter.role"
MAX_BACKOFF_S = 30.0
REFILL_DELAY_S = 1.0


class SandboxFactory:
    """Starts a sandbox and connects to it; the one way sandboxes are made."""

    def __init__(
        self,
        backend: SandboxBackend,
        *,
        max_output_bytes: int,
        ready_timeout_s: float,
        metrics: Metrics,
    ) -> None:
        self.backend = backend
        self.max_output_bytes = max_output_bytes
        self.ready_timeout_s = ready_timeout_s
        self.metrics = metrics

    async def start(self, spec: SandboxSpec) -> Sandbox:
        started = time.monotonic()
        creating = asyncio.ensure_future(self.backend.create(spec))
        try:
            record = await asyncio.shield(creating)
        except asyncio.CancelledError:
            # Cancelling does not stop the thread that starts the container: wait for
            # it and remove what it made, or the container outlives the service.
            with contextlib.suppress(Exception):
                await self.backend.destroy((await creating).id)
            raise
        sandbox = Sandbox(
            record, max_output_bytes=self.max_output_bytes, ready_timeout_s=self.ready_timeout_s
        )
        try:
            await sandbox.connect()
        except BaseException:
            await sandbox.close()
            await self.backend.destroy(record.id)
            raise
        self.metrics.sandbox_start_seconds.observe(time.monotonic() - started)
        return sandbox


class WarmPool:
    """Keeps ``size`` ready sandboxes. A claim takes one at once and starts a refill.

    Refill failures back off exponentially and are counted; a claim never waits for a
    refill: an empty pool answers ``None`` and the caller starts a sandbox cold.

    A refill after claims waits ``refill_delay_s`` first: starting a sandbox takes a
    second or two of CPU, and on a small machine it would double the time of the first
    executions in the sandbox just claimed (claim to first ``1+1``: 25 ms -> 11 ms here).
    The delay is taken once per refill, so a stream of claims cannot postpone it.
    """

    def __init__(
        self,
        factory: SandboxFactory,
        spec_for_pool: Callable[[], SandboxSpec],
        size: int,
        refill_delay_s: float = REFILL_DELAY_S,
    ) -> None:
        self.factory = factory
        self.spec_for_pool = spec_for_pool
        self.size = size
        self.refill_delay_s = refill_delay_s
        self._ready: list[Sandbox] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.consecutive_failures = 0
        self.last_error: str | None = None

    @property
    def ready(self) -> int:
        return len(self._ready)

    def start(self) -> None:
        if self.size > 0:
            self._task = asyncio.create_task(self._refill_forever())

    def claim(self) -> Sandbox | None:
        sandbox = self._ready.pop(0) if self._ready else None
        self.factory.metrics.pool_ready.set(len(self._ready))
        self._wake.set()
        return sandbox

    async def _refill_forever(self) -> None:
        backoff = 0.5
        while True:
            if len(self._ready) >= self.size:
                self._wake.clear()
                await self._wake.wait()
                # Woken by a claim: let the claimant's first executions go first.
                await asyncio.sleep(self.refill_delay_s)
                continue
            try:
                sandbox = await self.factory.start(self.spec_for_pool())
            except Exception as exc:  # whatever it is, the pool must go on refilling
                self.consecutive_failures += 1
                self.last_error = str(exc)
                self.factory.metrics.pool_refill_failures.inc()
                log.warning("warm pool refill failed (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = 0.5
            self.consecutive_failures = 0
            self.last_error = None
            self._ready.append(sandbox)
            self.factory.metrics.pool_ready.set(len(self._ready))

    async def close(self) -> None:
        """Stop refilling and destroy the sandboxes nobody claimed."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        ready, self._ready = self._ready, []
        for sandbox in ready:
            await sandbox.close()
            await self.factory.backend.destroy(sandbox.id)
