"""The Containers API through the official openai SDK: containers and their files, all
parsed by the SDK's own types, plus our execute extension over plain HTTP."""

from __future__ import annotations

import json

import openai
import pytest
from openai.types import ContainerCreateResponse, ContainerListResponse
from openai.types.containers import FileCreateResponse, FileListResponse

from tests.sessions.conftest import StartService

pytestmark = pytest.mark.docker


def test_containers_create_retrieve_list_delete(start_service: StartService) -> None:
    service = start_service()
    client = service.client()
    created = [
        client.containers.create(
            name=f"c{i}",
            expires_after={"anchor": "last_active_at", "minutes": 5 + i},
            memory_limit="1g",
            network_policy={"type": "disabled"},
        )
        for i in range(3)
    ]
    first = created[0]
    assert isinstance(first, ContainerCreateResponse)
    assert first.id.startswith("cntr_")
    assert first.object == "container"
    assert first.name == "c0"
    assert first.status == "running"
    assert first.expires_after is not None and first.expires_after.minutes == 5
    assert first.memory_limit == "1g"

    fetched = client.containers.retrieve(first.id)
    assert (fetched.id, fetched.name, fetched.created_at) == (first.id, "c0", first.created_at)

    ids = [c.id for c in created]
    page = client.containers.list(order="asc")
    assert all(isinstance(c, ContainerListResponse) for c in page.data)
    assert [c.id for c in page.data] == ids
    assert [c.id for c in client.containers.list(order="desc").data] == ids[::-1]
    # Cursor pagination: the SDK follows `after` itself.
    small = client.containers.list(order="asc", limit=2)
    assert [c.id for c in small.data] == ids[:2]
    assert small.has_more
    assert [c.id for c in client.containers.list(order="asc", limit=1)] == ids
    assert [c.id for c in client.containers.list(order="asc", after=ids[0]).data] == ids[1:]

    client.containers.delete(ids[1])
    assert [c.id for c in client.containers.list(order="asc").data] == [ids[0], ids[2]]
    with pytest.raises(openai.NotFoundError):
        client.containers.retrieve(ids[1])
    with pytest.raises(openai.NotFoundError):
        client.containers.delete(ids[1])
    assert service.manager.live_count == 2


def test_files_upload_list_retrieve_content_delete(start_service: StartService) -> None:
    service = start_service()
    client = service.client()
    stored = client.files.create(file=("seed.txt", b"from the files api"), purpose="user_data")
    container = client.containers.create(name="files", file_ids=[stored.id])

    uploaded = client.containers.files.create(container.id, file=("data.csv", b"a,b\n1,2\n3,4\n"))
    assert isinstance(uploaded, FileCreateResponse)
    assert uploaded.id.startswith("cfile_")
    assert uploaded.path == "/mnt/data/data.csv"
    assert uploaded.bytes == 12
    assert uploaded.source == "user"
    assert uploaded.container_id == container.id

    # The code sees the uploads, and what it writes to /mnt/data shows up as the
    # assistant's files.
    ran = service.execute(
        container.id,
        "import csv\n"
        "rows = list(csv.reader(open('/mnt/data/data.csv')))\n"
        "seed = open('/mnt/data/seed.txt').read()\n"
        "import os; os.makedirs('/mnt/data/out', exist_ok=True)\n"
        "open('/mnt/data/out/sum.txt', 'w').write(str(sum(int(r[0]) for r in rows[1:])))\n"
        "print(seed)",
    )
    assert ran["status"] == "ok", ran
    assert ran["outputs"] == [{"type": "stream", "name": "stdout", "text": "from the files api\n"}]

    listed = client.containers.files.list(container.id, order="asc")
    assert all(isinstance(f, FileListResponse) for f in listed.data)
    by_path = {f.path: f for f in listed.data}
    assert set(by_path) == {"/mnt/data/seed.txt", "/mnt/data/data.csv", "/mnt/data/out/sum.txt"}
    assert by_path["/mnt/data/seed.txt"].source == "user"
    assert by_path["/mnt/data/data.csv"].id == uploaded.id
    written = by_path["/mnt/data/out/sum.txt"]
    assert written.source == "assistant"
    assert written.bytes == 1
    assert client.containers.files.retrieve(written.id, container_id=container.id).path == (
        written.path
    )
    content = client.containers.files.content.retrieve(written.id, container_id=container.id)
    assert content.read() == b"4"
    upload_content = client.containers.files.content.retrieve(
        uploaded.id, container_id=container.id
    )
    assert upload_content.read() == b"a,b\n1,2\n3,4\n"

    # A file the code wrote since the last listing can be retrieved by its new id.
    service.execute(container.id, "open('/mnt/data/late.txt', 'w').write('late')")
    late = next(
        f for f in client.containers.files.list(container.id).data if f.path.endswith("late.txt")
    )
    assert late.source == "assistant"

    client.containers.files.delete(uploaded.id, container_id=container.id)
    after = service.execute(container.id, "import os; print(os.path.exists('/mnt/data/data.csv'))")
    assert after["outputs"][0]["text"] == "False\n"
    assert uploaded.id not in {f.id for f in client.containers.files.list(container.id).data}
    with pytest.raises(openai.NotFoundError):
        client.containers.files.retrieve(uploaded.id, container_id=container.id)
    with pytest.raises(openai.NotFoundError):
        client.containers.files.content.retrieve(uploaded.id, container_id=container.id)

    # A Files API file can be copied in by id (JSON body instead of multipart).
    copied = service.http.post(
        f"{service.server.v1}/containers/{container.id}/files", json={"file_id": stored.id}
    )
    assert copied.status_code == 200, copied.text
    assert FileCreateResponse.model_validate(copied.json()).path == "/mnt/data/seed.txt"

    # Re-uploading a name replaces the file and gives it a new id.
    again = client.containers.files.create(container.id, file=("late.txt", b"replaced"))
    assert again.id != late.id
    assert again.source == "user"
    assert (
        client.containers.files.content.retrieve(again.id, container_id=container.id).read()
        == b"replaced"
    )


def test_execute_keeps_state_and_types_outputs(start_service: StartService) -> None:
    service = start_service()
    container = service.client().containers.create(name="exec")
    first = service.execute(container.id, "x = 21")
    assert first["http_status"] == 200
    assert first["object"] == "container.execution"
    assert first["status"] == "ok"
    assert first["outputs"] == []
    second = service.execute(container.id, "print(x * 2)\nx * 2")
    assert second["outputs"] == [
        {"type": "stream", "name": "stdout", "text": "42\n"},
        {"type": "result", "data": {"text/plain": "42"}, "execution_count": 2},
    ]
    assert second["execution_count"] == first["execution_count"] + 1
    assert second["duration_ms"] > 0
    failed = service.execute(container.id, "undefined_name")
    assert failed["http_status"] == 200
    assert failed["status"] == "error"
    assert failed["outputs"][0]["type"] == "error"
    assert failed["outputs"][0]["ename"] == "NameError"

    looped = service.execute(container.id, "while True: pass", timeout=1)
    assert looped["status"] == "timeout"
    assert service.execute(container.id, "print(x)")["outputs"][0]["text"] == "21\n"


def test_execute_streams_outputs_as_server_sent_events(start_service: StartService) -> None:
    service = start_service()
    container = service.client().containers.create(name="stream")
    code = (
        "import sys, time\n"
        "print('one', flush=True)\n"
        "time.sleep(1.5)\n"
        "print('two', file=sys.stderr, flush=True)\n"
        "'three'"
    )
    events: list[tuple[str, dict[str, object]]] = []
    with service.http.stream(
        "POST",
        f"{service.server.v1}/containers/{container.id}/execute",
        json={"code": code, "stream": True},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((event, json.loads(line.removeprefix("data: "))))
    assert [name for name, _ in events] == ["output", "output", "output", "done"]
    assert events[0][1] == {"type": "stream", "name": "stdout", "text": "one\n"}
    assert events[1][1] == {"type": "stream", "name": "stderr", "text": "two\n"}
    assert events[2][1]["type"] == "result"
    done = events[3][1]
    assert done["status"] == "ok"
    assert done["execution_count"] == 1
    assert "outputs" not in done
