"""A full data folder (a real, small tmpfs, filled to the last byte): requests that must
store something get 507 with a message that says so, what was stored before reads back
intact, a response under way still finishes (and is stored once there is room), and the
service works again as soon as space is freed."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import docker_containers, wait_until
from tests.doubles import Paused, final, python_call

pytestmark = [pytest.mark.docker]

TOOLS: list[Any] = [{"type": "code_interpreter", "container": {"type": "auto"}}]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "data"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write until the file system has no byte left."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as sink:
        for size in (1 << 16, 1 << 12, 1):  # the last bytes one by one
            with contextlib.suppress(OSError):
                while True:
                    sink.write(b"\0" * size)
    with pytest.raises(OSError) as full:
        (folder / "probe").write_bytes(b"x")
    assert full.value.errno == errno.ENOSPC
    return filler


def assert_full(error: openai.APIStatusError) -> None:
    assert error.status_code == 507
    assert error.code == "insufficient_storage"
    assert "data folder" in error.message and "is full" in error.message


def test_a_full_data_folder_refuses_new_writes_and_keeps_what_it_has(
    start: Callable[..., Any], small_disk: Path
) -> None:
    under_way = Paused("<|channel|>final<|message|>Half of the answer", " and the rest.<|return|>")
    client, _, server = start(
        [python_call("x = 6 * 7\nprint(x)"), final("It is 42."), under_way],
        data_dir=small_disk,
        preimport="",
        pool_size=0,
    )
    service_name = server.app.state.settings.service_name
    # Stored before the disk fills: a response, a file, a container with an upload.
    answered = client.responses.create(
        model="scripted", input="6*7?", tools=TOOLS, include=["code_interpreter_call.outputs"]
    )
    uploaded = client.files.create(file=("notes.txt", b"kept notes"), purpose="user_data")
    box = client.containers.create(name="before")
    box_file = client.containers.files.create(box.id, file=("in.txt", b"kept input"))
    events = iter(
        client.responses.create(
            model="scripted", input="Go on.", stream=True, previous_response_id=answered.id
        )
    )
    streamed_id = next(events).response.id  # type: ignore[union-attr]
    # Waited for, not read up to: the last event before the pause can come before the
    # pause is reached, and then no event follows until the gate opens.
    assert under_way.reached.wait(60)
    containers_before = set(docker_containers(service_name))

    filler = fill(small_disk)
    for refused in (
        lambda: client.responses.create(model="scripted", input="More?", tools=TOOLS),
        lambda: client.files.create(file=("new.txt", b"new"), purpose="user_data"),
        lambda: client.containers.create(name="after"),
        lambda: client.containers.files.create(box.id, file=("new.txt", b"new")),
    ):
        with pytest.raises(openai.APIStatusError) as error:
            refused()
        assert_full(error.value)
    ready = httpx.get(f"{server.base_url}/readyz", timeout=60)
    assert ready.status_code == 503 and "is full" in ready.json()["reason"]
    # Nothing half-made: no new container, no file the refused upload named.
    assert set(docker_containers(service_name)) == containers_before
    assert [f.path for f in client.containers.files.list(box.id)] == ["/mnt/data/in.txt"]

    # What was stored reads back as it was.
    again = client.responses.retrieve(answered.id, include=["code_interpreter_call.outputs"])
    assert again.model_dump() == answered.model_dump()
    assert client.files.content(uploaded.id).read() == b"kept notes"
    kept = client.containers.files.content.retrieve(box_file.id, container_id=box.id)
    assert kept.read() == b"kept input"

    # The response under way finishes, and reads as finished, though it cannot be stored.
    under_way.gate.set()
    finished = [event.type for event in events][-1]
    assert finished == "response.completed"
    assert client.responses.retrieve(streamed_id).output_text == "Half of the answer and the rest."

    filler.unlink()
    store = server.app.state.responses.store
    # Stored once there is room, with no request needed.
    wait_until(
        lambda: server.call(store.get(streamed_id, None)).body["status"] == "completed",
        timeout_s=30,
    )
    assert client.files.create(file=("new.txt", b"new"), purpose="user_data").bytes == 3
    assert client.containers.create(name="after").name == "after"
    client.containers.files.create(box.id, file=("new.txt", b"new"))
    assert client.responses.create(model="scripted", input="More?").status == "completed"
    with sqlite3.connect(small_disk / "responses.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
