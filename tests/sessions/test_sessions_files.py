"""The session's record of /mnt/data: listed from the sandbox after code ran, kept up to
date by the service's own uploads and deletions in between."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from interpreter.config import Settings
from interpreter.metrics import Metrics
from interpreter.sandboxes.docker_backend import DockerSandboxBackend
from interpreter.sessions.manager import Session, SessionManager

pytestmark = pytest.mark.docker


@pytest.fixture
async def manager(make_settings: Callable[..., Settings]) -> AsyncIterator[SessionManager]:
    settings = make_settings(pool_size=0, preimport="")
    backend = DockerSandboxBackend.from_settings(settings)
    manager = SessionManager(settings, backend, Metrics())
    await manager.start()
    try:
        yield manager
    finally:
        await manager.close(end_sessions=True)
        await backend.close()


def names(records: list) -> list[str]:  # type: ignore[type-arg]
    return [r.path.rsplit("/", 1)[-1] for r in records]


async def known(manager: SessionManager, session: Session) -> list[str]:
    return names(await manager.known_files(session))


async def test_known_files_follow_code_uploads_and_deletions(manager: SessionManager) -> None:
    session = await manager.create(owner=None, name="files")
    assert await known(manager, session) == []
    await manager.execute(session, "open('/mnt/data/a.txt', 'w').write('a')")
    assert await known(manager, session) == ["a.txt"]  # code ran: listed afresh
    uploaded = await manager.upload(session, "b.csv", b"x,y\n1,2\n")
    assert await known(manager, session) == ["a.txt", "b.csv"]
    await manager.delete_file(session, uploaded.id)
    assert await known(manager, session) == ["a.txt"]
    await manager.execute(session, "import os; os.remove('/mnt/data/a.txt')")
    assert await known(manager, session) == []


async def test_a_file_written_outside_an_execution_shows_at_the_next_listing(
    manager: SessionManager,
) -> None:
    session = await manager.create(owner=None, name="late")
    # A process the code left behind writes after its execution has ended.
    await manager.execute(
        session,
        "import subprocess\n"
        "subprocess.Popen(['sh', '-c', 'sleep 1; echo late > /mnt/data/late.txt'])",
    )
    assert await known(manager, session) == []
    await asyncio.sleep(2)
    # No code ran since that listing: the record stands, without asking the sandbox...
    assert await known(manager, session) == []
    # ...until the next listing, which the next execution's end brings.
    await manager.execute(session, "pass")
    assert await known(manager, session) == ["late.txt"]


async def test_a_listing_during_an_upload_keeps_the_upload(manager: SessionManager) -> None:
    session = await manager.create(owner=None, name="racing")
    upload = asyncio.create_task(manager.upload(session, "big.bin", b"x" * (48 << 20)))
    await asyncio.sleep(0)  # the upload starts, and waits for the agent
    assert session.uploading == {"/mnt/data/big.bin"}
    # Listed while the upload is still being written: the agent shows a file only
    # once whole, and the record of the upload stays.
    listed = await manager.list_files(session)
    assert names(listed) == ["big.bin"]
    assert session.files_listed_at is None  # a listing during a change is not kept
    record = await upload
    listed = await manager.known_files(session)
    assert [(r.id, r.bytes) for r in listed] == [(record.id, 48 << 20)]
