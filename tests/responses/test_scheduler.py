"""The model scheduler: one generation at a time, interactive requests before background."""

from __future__ import annotations

import asyncio

from interpreter.responses.scheduler import BACKGROUND, INTERACTIVE, ModelScheduler


async def settle() -> None:
    """Let every ready task run up to its next wait."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_interactive_requests_go_first() -> None:
    scheduler = ModelScheduler()
    order: list[str] = []
    holder_entered = asyncio.Event()
    release_holder = asyncio.Event()

    async def holder() -> None:
        async with scheduler.slot(INTERACTIVE):
            holder_entered.set()
            await release_holder.wait()

    async def worker(name: str, priority: int) -> None:
        async with scheduler.slot(priority):
            order.append(name)
            await asyncio.sleep(0)

    first = asyncio.create_task(holder())
    await holder_entered.wait()
    waiting = [
        asyncio.create_task(worker("background-1", BACKGROUND)),
        asyncio.create_task(worker("background-2", BACKGROUND)),
        asyncio.create_task(worker("interactive", INTERACTIVE)),
    ]
    await settle()
    assert scheduler.queued == 3
    release_holder.set()
    await asyncio.gather(first, *waiting)
    assert order == ["interactive", "background-1", "background-2"]


async def test_a_cancelled_waiter_does_not_block_the_slot() -> None:
    scheduler = ModelScheduler()
    release = asyncio.Event()
    ran: list[str] = []

    async def holder() -> None:
        async with scheduler.slot(INTERACTIVE):
            await release.wait()

    async def worker(name: str) -> None:
        async with scheduler.slot(INTERACTIVE):
            ran.append(name)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    doomed = asyncio.create_task(worker("doomed"))
    survivor = asyncio.create_task(worker("survivor"))
    await settle()
    assert scheduler.queued == 2
    doomed.cancel()
    release.set()
    await asyncio.gather(first, survivor)
    assert ran == ["survivor"]
    # And the slot is free again afterwards.
    await asyncio.wait_for(worker("after"), 1)
    assert ran == ["survivor", "after"]
