"""Server-sent events with keepalives.

Starlette notices a client that went away only when it next sends. A long execution
sends nothing for a while, so without keepalives a disconnected client's code would run
on to the end. A comment line every second both keeps proxies from timing out and lets
us find out, and then cancel the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

KEEPALIVE_S = 1.0
KEEPALIVE = ": keepalive\n\n"


def sse_event(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


async def with_keepalives(
    events: AsyncIterator[str], interval_s: float = KEEPALIVE_S
) -> AsyncIterator[str]:
    """Relay ``events``, inserting keepalives when they pause; cancel them when the
    client goes away (our consumer is closed)."""
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=64)

    async def pump() -> None:
        try:
            async for event in events:
                await queue.put(event)
        finally:
            await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), interval_s)
            except TimeoutError:
                yield KEEPALIVE
                continue
            if item is None:
                break
            yield item
        await task  # re-raise what the producer raised
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
