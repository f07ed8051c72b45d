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
    """Relay ``events``, inserting a keepalive whenever none has been relayed for
    ``interval_s``; cancel them when the client goes away (our consumer is closed).

    The keepalives come from a timer task of their own rather than a time-out on each
    wait: a streamed response relays an event per token, and a time-out per event
    (``asyncio.wait_for``) is a task per event on the event loop.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=64)
    last_relayed = loop.time()

    async def pump() -> None:
        try:
            async for event in events:
                await queue.put(event)
        finally:
            await queue.put(None)

    async def beat() -> None:
        while True:
            quiet_for = loop.time() - last_relayed
            if quiet_for < interval_s:
                await asyncio.sleep(interval_s - quiet_for)
                continue
            if queue.empty():  # else the client is slow to take events: none to add
                await queue.put(KEEPALIVE)
            await asyncio.sleep(interval_s)

    task = asyncio.create_task(pump())
    beats = asyncio.create_task(beat())
    try:
        while True:
            item = await queue.get()
            if item is None:
                break
            last_relayed = loop.time()
            yield item
            last_relayed = loop.time()  # the client took it only now
        await task  # re-raise what the producer raised
    finally:
        beats.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beats
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
