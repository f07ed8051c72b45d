"""Admission to the model: as many generations at once as the engine serves well,
interactive requests before background ones.

The gate's capacity is the generator's declared ``concurrency`` (a batching runner's
batch size, a remote engine's parallel slots). A place is held for one model call, until
``<|call|>`` or ``<|return|>``, and released while the tool runs, so a conversation that
is running code does not keep another waiting. Waiters are served by priority, then in
arrival order; a waiter that is cancelled (its client left) gives up its place at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator

INTERACTIVE = 0
BACKGROUND = 1


class AdmissionGate:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("an admission gate needs a capacity of at least 1")
        self.capacity = capacity
        self._admitted = 0
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @contextlib.asynccontextmanager
    async def admit(self, priority: int) -> AsyncIterator[None]:
        """Hold one place for the duration of the ``async with`` body."""
        if self._admitted < self.capacity and not self._waiting:
            self._admitted += 1
        else:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (priority, next(self._order), future)
            heapq.heappush(self._waiting, entry)
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    # Handed a place just as we were cancelled: pass it on.
                    self._release()
                else:
                    self._waiting.remove(entry)
                    heapq.heapify(self._waiting)
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiting:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)  # the place passes directly: the count stays
                return
        self._admitted -= 1

    @property
    def admitted(self) -> int:
        """Generations holding a place now."""
        return self._admitted

    @property
    def queued(self) -> int:
        """Requests waiting for a place."""
        return len(self._waiting)
