"""Bad input gets OpenAI's error shape and the right status, never a crash or a leak;
API keys keep each key's containers to itself."""

from __future__ import annotations

import asyncio
import threading

import httpx
import openai
import pytest

from tests.conftest import wait_until
from tests.sessions.conftest import StartService

pytestmark = pytest.mark.docker


def raw_multipart(filename: str, content: bytes) -> tuple[bytes, str]:
    """A multipart body with the file name exactly as given (httpx would escape it)."""
    boundary = "test-boundary-4b1d"
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error


def test_bad_requests_get_openai_errors(start_service: StartService) -> None:
    service = start_service(max_upload_bytes=1000)
    http, v1 = service.http, service.server.v1
    client = service.client()

    with pytest.raises(openai.NotFoundError) as missing:
        client.containers.retrieve("cntr_doesnotexist")
    assert missing.value.code == "not_found"
    assert_error(http.get(f"{v1}/containers/cntr_x"), 404)
    assert_error(http.post(f"{v1}/containers/cntr_x/execute", json={"code": "1"}), 404)
    assert_error(http.get(f"{v1}/containers/cntr_x/files"), 404)
    assert_error(http.post(f"{v1}/containers/cntr_x/interrupt"), 404)

    # Malformed bodies: 422 with the offending parameter named.
    error = assert_error(
        http.post(
            f"{v1}/containers",
            json={"name": "x", "expires_after": {"anchor": "last_active_at", "minutes": 0}},
        ),
        422,
    )
    assert error["param"] == "expires_after.minutes"
    assert_error(
        http.post(
            f"{v1}/containers", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
    )
    assert_error(http.post(f"{v1}/containers", json={"name": ["not", "a", "string"]}), 422)
    assert_error(http.get(f"{v1}/containers", params={"limit": 0}), 422)
    assert_error(http.get(f"{v1}/containers", params={"order": "sideways"}), 422)
    error = assert_error(
        http.post(f"{v1}/containers", json={"name": "x", "memory_limit": "2g"}), 400
    )
    assert error["param"] == "memory_limit"
    assert_error(http.post(f"{v1}/containers", json={"name": "x", "memory_limit": "64g"}), 400)
    allowlist = {"type": "allowlist", "allowed_domains": ["pypi.org"]}
    error = assert_error(
        http.post(f"{v1}/containers", json={"name": "x", "network_policy": allowlist}), 422
    )
    assert error["param"] == "network_policy.type"
    assert_error(http.post(f"{v1}/containers", json={"name": "x", "file_ids": ["file-nope"]}), 404)
    assert service.manager.live_count == 0  # nothing was claimed for a bad request

    container = client.containers.create(name="errors")
    execute = f"{v1}/containers/{container.id}/execute"
    assert_error(http.post(execute, json={}), 422)
    assert_error(http.post(execute, json={"code": "1", "timeout": -1}), 422)
    assert_error(http.post(execute, json={"code": "1", "unknown": True}), 422)
    assert_error(http.post(execute, json={"code": "1", "timeout": 10_000}), 400)

    # Uploads: odd names and traversal are refused, oversized ones answered 413.
    files = f"{v1}/containers/{container.id}/files"
    for name in ["../escape.txt", "a/b.txt", "..", ".hidden", "bad\x01name", "back\\slash", ""]:
        body, content_type = raw_multipart(name, b"x")
        response = http.post(files, content=body, headers={"content-type": content_type})
        assert response.status_code == 400, (name, response.text)
        assert_error(response, 400)
    assert_error(http.post(files, files={"file": ("big.bin", b"x" * 1001)}), 413, "file_too_large")
    assert_error(http.post(files, data={"not_file": "x"}), 400)
    assert_error(
        http.post(
            files, content=b"garbage", headers={"content-type": "multipart/form-data; boundary=zz"}
        ),
        400,
    )
    assert_error(http.post(f"{v1}/files", files={"file": ("big.bin", b"x" * 1001)}), 413)
    assert_error(http.get(f"{files}/cfile_nope"), 404)
    assert_error(http.get(f"{files}/cfile_nope/content"), 404)
    assert_error(http.delete(f"{files}/cfile_nope"), 404)
    assert_error(http.get(f"{service.server.base_url}/v1/no/such/route"), 404)
    listing = service.execute(container.id, "import os; print(sorted(os.listdir('/mnt/data')))")
    assert listing["outputs"][0]["text"] == "[]\n"
    ok = http.post(files, files={"file": ("fine name (1).txt", b"ok")})
    assert ok.status_code == 200, ok.text

    # After all of that the service is fine and holds just the one container.
    assert service.execute(container.id, "1+1")["outputs"][0]["data"] == {"text/plain": "2"}
    assert service.manager.live_count == 1


def test_session_cap_answers_429_under_the_reject_policy(start_service: StartService) -> None:
    service = start_service(max_sessions=2, capacity_policy="reject")
    v1 = service.server.v1

    async def create_four() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=120) as http:
            return list(
                await asyncio.gather(
                    *(http.post(f"{v1}/containers", json={"name": f"c{i}"}) for i in range(4))
                )
            )

    # Concurrent creations count against the cap while their sandboxes start.
    responses = asyncio.run(create_four())
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429]
    refused = next(r for r in responses if r.status_code == 429)
    assert_error(refused, 429, "session_limit_reached")
    assert int(refused.headers["retry-after"]) > 0
    with pytest.raises(openai.RateLimitError):
        service.client().containers.create(name="over")
    # Deleting one makes room again.
    first = next(r for r in responses if r.status_code == 200).json()["id"]
    service.client().containers.delete(first)
    assert service.client().containers.create(name="again").id.startswith("cntr_")


def test_at_the_cap_the_least_recently_used_idle_session_makes_room(
    start_service: StartService,
) -> None:
    service = start_service(max_sessions=2)
    client = service.client()
    oldest = client.containers.create(name="oldest")
    newer = client.containers.create(name="newer")
    service.execute(oldest.id, "x = 1")  # used last: the other one is now the oldest idle
    third = client.containers.create(name="third")
    assert {c.id for c in client.containers.list()} == {oldest.id, third.id}
    with pytest.raises(openai.NotFoundError) as gone:
        client.containers.retrieve(newer.id)
    assert gone.value.code == "container_expired"
    assert "to make room" in str(gone.value)
    metrics = service.http.get(f"{service.server.base_url}/metrics").text
    assert "interpreter_session_evictions_total 1.0" in metrics

    # With every session running code there is nothing to end: 429, and a wait.
    running = [
        threading.Thread(target=service.execute, args=(box, "import time; time.sleep(30)"))
        for box in (oldest.id, third.id)
    ]
    for thread in running:
        thread.start()
    wait_until(lambda: all(s.busy for s in service.manager.list(None)), timeout_s=60)
    refused = service.http.post(f"{service.server.v1}/containers", json={"name": "fourth"})
    assert_error(refused, 429, "session_limit_reached")
    assert "running code" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) > 0
    for box in (oldest.id, third.id):
        service.http.post(f"{service.server.v1}/containers/{box}/interrupt")
    for thread in running:
        thread.join()


def test_one_key_at_its_quota_does_not_affect_another(start_service: StartService) -> None:
    service = start_service(api_keys="key-one, key-two", max_sessions_per_key=1)
    one, two = service.client("key-one"), service.client("key-two")
    one.containers.create(name="mine")
    with pytest.raises(openai.RateLimitError) as refused:
        one.containers.create(name="one too many")
    assert "This API key holds its maximum of 1" in str(refused.value)
    assert two.containers.create(name="theirs").id.startswith("cntr_")


def test_api_keys_keep_containers_apart(start_service: StartService) -> None:
    service = start_service(api_keys="key-one, key-two")
    http, v1 = service.http, service.server.v1
    one, two = service.client("key-one"), service.client("key-two")

    assert_error(http.get(f"{v1}/containers"), 401, "invalid_api_key")
    assert_error(http.get(f"{v1}/containers", headers={"Authorization": "Bearer wrong"}), 401)
    assert_error(http.get(f"{v1}/containers", headers={"Authorization": "Basic key-one"}), 401)
    with pytest.raises(openai.AuthenticationError):
        service.client("wrong").containers.list()

    mine = one.containers.create(name="mine")
    uploaded = one.containers.files.create(mine.id, file=("secret.txt", b"secret"))
    assert [c.id for c in one.containers.list().data] == [mine.id]
    assert two.containers.list().data == []
    with pytest.raises(openai.NotFoundError):
        two.containers.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        two.containers.files.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        two.containers.files.content.retrieve(uploaded.id, container_id=mine.id)
    with pytest.raises(openai.NotFoundError):
        two.containers.delete(mine.id)
    assert service.execute(mine.id, "1", api_key="key-two")["http_status"] == 404
    assert_error(
        http.post(
            f"{v1}/containers/{mine.id}/restart", headers={"Authorization": "Bearer key-two"}
        ),
        404,
    )
    stored = one.files.create(file=("f.txt", b"one's file"), purpose="user_data")
    with pytest.raises(openai.NotFoundError):
        two.files.retrieve(stored.id)
    with pytest.raises(openai.NotFoundError):
        two.containers.create(name="steal", file_ids=[stored.id])

    # The owner still has everything, and health endpoints need no key.
    assert (
        service.execute(mine.id, "print(open('/mnt/data/secret.txt').read())", api_key="key-one")[
            "outputs"
        ][0]["text"]
        == "secret\n"
    )
    assert http.get(f"{service.server.base_url}/healthz").status_code == 200
