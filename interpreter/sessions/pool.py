"""A pool of pre-warmed sandboxes (container up, kernel answering, pre-imports done) that
follows demand, and the factory that makes every sandbox."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable

from interpreter.errors import SandboxError
from interpreter.metrics import Metrics
from interpreter.sandboxes.base import SandboxBackend, SandboxSpec
from interpreter.sandboxes.sandbox import Sandbox

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
REFILL_DELAY_S = 1.0
#: Claims within this window raise the pool's target; a pool this long without a claim
#: is back at its minimum.
DEMAND_WINDOW_S = 60.0


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
        # Sandboxes to remove that the engine could not remove yet (it was down).
        self.undestroyed: set[str] = set()

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

    async def discard(self, sandbox: Sandbox) -> None:
        """Disconnect from a sandbox and remove it. An engine that cannot remove it now
        (it is down) gets asked again by ``retry_discards``."""
        await sandbox.close()
        await self.destroy(sandbox.id)

    async def destroy(self, sandbox_id: str) -> None:
        try:
            await self.backend.destroy(sandbox_id)
        except SandboxError as exc:
            log.warning("could not remove sandbox %s yet: %s", sandbox_id, exc.message)
            self.undestroyed.add(sandbox_id)
        else:
            self.undestroyed.discard(sandbox_id)

    async def retry_discards(self) -> None:
        for sandbox_id in list(self.undestroyed):
            await self.destroy(sandbox_id)


class WarmPool:
    """Ready sandboxes, kept between ``minimum`` and ``maximum`` as demand goes.

    The target is the minimum plus the claims of the last ``demand_window_s`` seconds
    (at most the maximum): a burst of conversations raises it at once, and a quiet minute
    brings it back down, one surplus sandbox at a time.

    ``acquire`` takes a ready sandbox, or else the first one to finish starting,
    whichever start that is: a claim never waits for a sandbox another claim was
    waiting for, and every start begun for a claim that got another serves the next.
    Up to ``max_starts`` sandboxes start at once (each takes a second or two of CPU).
    Refill failures back off exponentially and are counted; a claim never waits out a
    back-off (its start begins at once), and a claim waiting gets a failure.

    A ready sandbox is checked as it is claimed (its agent must answer): one whose
    container died meanwhile (the engine restarted, say) is removed, never handed out.

    A refill after claims waits ``refill_delay_s`` first: on a small machine a start
    doubled the time of the first executions in the sandbox just claimed (claim to first
    ``1+1``: 25 ms -> 11 ms here). Claims that are waiting never wait for that.
    """

    def __init__(
        self,
        factory: SandboxFactory,
        spec_for_pool: Callable[[], SandboxSpec],
        minimum: int,
        maximum: int | None = None,
        max_starts: int = 2,
        refill_delay_s: float = REFILL_DELAY_S,
        demand_window_s: float = DEMAND_WINDOW_S,
    ) -> None:
        self.factory = factory
        self.spec_for_pool = spec_for_pool
        self.minimum = minimum
        self.maximum = max(minimum, maximum if maximum is not None else minimum)
        self.max_starts = max(1, max_starts)
        self.refill_delay_s = refill_delay_s
        self.demand_window_s = demand_window_s
        # While quiet, one surplus sandbox goes every this often.
        self.shrink_every_s = demand_window_s / 12
        self._ready: list[Sandbox] = []
        self._waiters: collections.deque[asyncio.Future[Sandbox]] = collections.deque()
        self._starting: set[asyncio.Task[None]] = set()
        self._claims: collections.deque[float] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._backoff_until = 0.0
        self._backoff = 0.5
        self._next_shrink = 0.0
        self._removing: set[asyncio.Task[None]] = set()
        self.consecutive_failures = 0
        self.last_error: str | None = None

    @property
    def ready(self) -> int:
        return len(self._ready)

    @property
    def starting(self) -> int:
        return len(self._starting)

    @property
    def target(self) -> int:
        """How many ready sandboxes the pool aims for now."""
        if self.maximum == 0:
            return 0
        now = time.monotonic()
        while self._claims and now - self._claims[0] > self.demand_window_s:
            self._claims.popleft()
        return min(self.maximum, self.minimum + len(self._claims))

    def start(self) -> None:
        self._task = asyncio.create_task(self._refill_forever())

    def _publish(self) -> None:
        self.factory.metrics.pool_ready.set(len(self._ready))

    async def acquire(self) -> Sandbox:
        """A ready sandbox: one waiting in the pool, or the next to finish starting."""
        self._claims.append(time.monotonic())
        while self._ready:
            sandbox = self._ready.pop(0)
            self._publish()
            self._wake.set()
            if await sandbox.responds():
                return sandbox
            log.warning("a warm sandbox, %s, no longer answers: removing it", sandbox.id)
            self._remove(sandbox)
        waiter: asyncio.Future[Sandbox] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake.set()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._deliver(waiter.result())  # handed over just as we left: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def _deliver(self, sandbox: Sandbox) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(sandbox)
                return
        self._ready.append(sandbox)
        self._publish()

    def _fail_oldest_waiter(self, exc: Exception) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)
                return

    async def _start_one(self) -> None:
        try:
            sandbox = await self.factory.start(self.spec_for_pool())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # whatever it is, the pool must go on refilling
            self.consecutive_failures += 1
            self.last_error = str(exc)
            self.factory.metrics.pool_refill_failures.inc()
            log.warning("warm pool start failed (%s); retrying in %.1fs", exc, self._backoff)
            self._backoff_until = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
            self._fail_oldest_waiter(
                exc if isinstance(exc, SandboxError) else SandboxError(str(exc))
            )
            return
        finally:
            self._wake.set()
        self._backoff = 0.5
        self.consecutive_failures = 0
        self.last_error = None
        self._deliver(sandbox)

    def _launch(self) -> None:
        task = asyncio.create_task(self._start_one())
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _refill_forever(self) -> None:
        last_claims = 0
        while True:
            waiting = sum(1 for w in self._waiters if not w.done())
            wanted = waiting + self.target - len(self._ready) - len(self._starting)
            now = time.monotonic()
            # Backing off, only claims waiting get starts: a claim never waits it out.
            starts = (
                min(wanted, waiting - len(self._starting)) if now < self._backoff_until else wanted
            )
            if starts > 0:
                if not waiting and len(self._claims) != last_claims and self.refill_delay_s:
                    # Claims just came: let the claimants' first executions go first.
                    last_claims = len(self._claims)
                    await asyncio.sleep(self.refill_delay_s)
                    continue
                while starts > 0 and len(self._starting) < self.max_starts:
                    self._launch()
                    starts -= 1
            elif len(self._ready) > self.target and not self._starting and now >= self._next_shrink:
                self._next_shrink = now + self.shrink_every_s
                self._remove(self._ready.pop())
                self._publish()
            last_claims = len(self._claims)
            self._wake.clear()
            timeout = max(0.05, self._backoff_until - now) if wanted > 0 else self.shrink_every_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def drop(self, sandbox_ids: set[str]) -> None:
        """Remove ready sandboxes whose containers are gone (the engine lost them)."""
        for sandbox in [s for s in self._ready if s.id in sandbox_ids]:
            self._ready.remove(sandbox)
            self._remove(sandbox)
        self._publish()
        self._wake.set()

    @property
    def sandbox_ids(self) -> set[str]:
        return {sandbox.id for sandbox in self._ready}

    def _remove(self, sandbox: Sandbox) -> None:
        """Destroy a sandbox in the background: claims must not wait for it."""
        task = asyncio.create_task(self.factory.discard(sandbox))
        self._removing.add(task)
        task.add_done_callback(self._removing.discard)

    async def close(self) -> None:
        """Stop refilling and destroy the sandboxes nobody claimed."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._starting):
            task.cancel()
        for task in list(self._starting):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(SandboxError("the service is stopping"))
        for removal in list(self._removing):
            with contextlib.suppress(Exception):
                await removal
        ready, self._ready = self._ready, []
        for sandbox in ready:
            await self.factory.discard(sandbox)
