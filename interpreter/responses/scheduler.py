"""One generation at a time on the model, synchronous requests before background ones.

A slot is held for one model call (until ``<|call|>`` or ``<|return|>``) and released
while the tool runs, so conversations interleave on the model between their tool calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator

INTERACTIVE = 0
BACKGROUND = 1


class ModelScheduler:
    def __init__(self) -> None:
        self._busy = False
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @contextlib.asynccontextmanager
    async def slot(self, priority: int) -> AsyncIterator[None]:
        if self._busy or self._waiting:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (priority, next(self._order), future)
            heapq.heappush(self._waiting, entry)
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    # We were handed the slot just as we were cancelled: pass it on.
                    self._release()
                else:
                    self._waiting.remove(entry)
                    heapq.heapify(self._waiting)
                raise
        else:
            self._busy = True
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiting:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)  # the slot passes directly: _busy stays True
                return
        self._busy = False

    @property
    def queued(self) -> int:
        return len(self._waiting)
