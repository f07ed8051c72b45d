"""A killed service, restarted, finds its live sessions with their state intact and
removes every other container it had."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from openai import OpenAI

from tests.conftest import wait_until
from tests.sessions.conftest import remove_containers
from tests.sessions.service_process import ServiceProcess

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def containers_by_role(service_name: str) -> dict[str, set[str]]:
    """Sandbox ids of one service's containers, by their role label."""
    client = docker.from_env()
    try:
        found: dict[str, set[str]] = {}
        for container in client.containers.list(
            all=True, filters={"label": f"code-interpreter.service={service_name}"}, sparse=True
        ):
            labels = container.attrs["Labels"]
            found.setdefault(labels["code-interpreter.role"], set()).add(
                labels["code-interpreter.sandbox"]
            )
        return found
    finally:
        client.close()


@pytest.fixture
def service_name(run_id: str) -> Iterator[str]:
    name = f"{run_id}-readopt"
    yield name
    remove_containers(name)


def test_killed_service_readopts_sessions_and_removes_orphans(
    tmp_path: Path, service_name: str
) -> None:
    first = ServiceProcess.serve(tmp_path, service_name).start()
    try:
        first.wait_healthy()
        client = OpenAI(base_url=f"{first.base_url}/v1", api_key="none", max_retries=0)
        with client:
            kept = client.containers.create(name="kept")
            uploaded = client.containers.files.create(kept.id, file=("note.txt", b"hello"))
            execute = f"{first.base_url}/v1/containers/{kept.id}/execute"
            ran = httpx.post(execute, json={"code": "x = 42\nopen('out.txt', 'w').write('o')"})
            assert ran.json()["status"] == "ok"
            files_before = {f.id: f.path for f in client.containers.files.list(kept.id)}
        wait_until(lambda: "pool" in containers_by_role(service_name), timeout_s=120)
        before = containers_by_role(service_name)
        assert len(before["session"] | before.get("pool", set())) >= 2
    finally:
        first.signal(signal.SIGKILL)

    # Killed: nothing was cleaned up, the containers still run.
    assert containers_by_role(service_name) == before

    second = ServiceProcess.serve(tmp_path, service_name, "--cleanup-on-exit").start()
    try:
        second.wait_healthy()
        client = OpenAI(base_url=f"{second.base_url}/v1", api_key="none", max_retries=0)
        with client:
            assert client.containers.retrieve(kept.id).name == "kept"
            execute = f"{second.base_url}/v1/containers/{kept.id}/execute"
            ran = httpx.post(execute, json={"code": "print(x)"}, timeout=60).json()
            assert ran["outputs"] == [{"type": "stream", "name": "stdout", "text": "42\n"}]
            assert ran["notice"] is None
            files_after = {f.id: f.path for f in client.containers.files.list(kept.id)}
            assert files_after == files_before
            content = client.containers.files.content.retrieve(uploaded.id, container_id=kept.id)
            assert content.read() == b"hello"
        # The old warm sandbox was nobody's: removed. The session's container stayed.
        after = containers_by_role(service_name)
        assert after["session"] == before["session"]
        assert not after.get("pool", set()) & before.get("pool", set())
    finally:
        # uvicorn shuts down cleanly, then re-raises the signal it caught.
        assert second.signal(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in second.log.read_text()
    # Stopped with --cleanup-on-exit: every container is gone.
    assert not containers_by_role(service_name)
