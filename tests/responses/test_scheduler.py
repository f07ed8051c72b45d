"""The admission gate: as many model calls at once as the engine serves, interactive
requests before background ones, and a cancelled waiter gives up its place."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from interpreter.responses.scheduler import BACKGROUND, INTERACTIVE, AdmissionGate


async def until(predicate: Callable[[], bool]) -> None:
    """Yield to the loop until ``predicate`` holds (the test's time-out bounds it). The
    gate has no event for "a request is queued": its waiters queue as soon as they run."""
    while not predicate():  # noqa: ASYNC110
        await asyncio.sleep(0)


async def test_admits_up_to_its_capacity_then_queues() -> None:
    gate = AdmissionGate(2)
    release = asyncio.Event()
    inside = 0

    async def call() -> None:
        nonlocal inside
        async with gate.admit(INTERACTIVE):
            inside += 1
            await release.wait()

    tasks = [asyncio.create_task(call()) for _ in range(5)]
    await until(lambda: inside == 2 and gate.queued == 3)
    assert gate.admitted == 2
    release.set()
    await asyncio.gather(*tasks)
    assert (gate.admitted, gate.queued, inside) == (0, 0, 5)


async def test_interactive_requests_go_first() -> None:
    gate = AdmissionGate(1)
    order: list[str] = []
    holder_entered = asyncio.Event()
    release_holder = asyncio.Event()

    async def holder() -> None:
        async with gate.admit(INTERACTIVE):
            holder_entered.set()
            await release_holder.wait()

    async def worker(name: str, priority: int) -> None:
        async with gate.admit(priority):
            order.append(name)

    first = asyncio.create_task(holder())
    await holder_entered.wait()
    waiting = [
        asyncio.create_task(worker("background-1", BACKGROUND)),
        asyncio.create_task(worker("background-2", BACKGROUND)),
        asyncio.create_task(worker("interactive", INTERACTIVE)),
    ]
    await until(lambda: gate.queued == 3)
    release_holder.set()
    await asyncio.gather(first, *waiting)
    assert order == ["interactive", "background-1", "background-2"]


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    gate = AdmissionGate(1)
    release = asyncio.Event()
    ran: list[str] = []

    async def holder() -> None:
        async with gate.admit(INTERACTIVE):
            await release.wait()

    async def worker(name: str) -> None:
        async with gate.admit(INTERACTIVE):
            ran.append(name)

    first = asyncio.create_task(holder())
    await until(lambda: gate.admitted == 1)
    doomed = asyncio.create_task(worker("doomed"))
    survivor = asyncio.create_task(worker("survivor"))
    await until(lambda: gate.queued == 2)
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert gate.queued == 1
    release.set()
    await asyncio.gather(first, survivor)
    assert ran == ["survivor"]
    # And the place is free again afterwards.
    await worker("after")
    assert ran == ["survivor", "after"] and gate.admitted == 0


def test_a_gate_needs_a_place() -> None:
    with pytest.raises(ValueError):
        AdmissionGate(0)
