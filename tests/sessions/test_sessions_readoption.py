"""A killed service, restarted, finds its live sessions with their state intact and
removes every other container it had."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import wait_until
from tests.sessions.conftest import remove_containers
from tests.sessions.service_process import ServiceProcess

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def sandboxes_of(service_name: str) -> set[str]:
    """Sandbox ids of one service's containers."""
    client = docker.from_env()
    try:
        found: set[str] = set()
        for container in client.containers.list(
            all=True, filters={"label": f"code-interpreter.service={service_name}"}, sparse=True
        ):
            found.add(container.attrs["Labels"]["code-interpreter.sandbox"])
        return found
    finally:
        client.close()


def remove_sandbox(service_name: str, sandbox_id: str) -> None:
    client = docker.from_env()
    try:
        for container in client.containers.list(
            all=True,
            filters={
                "label": [
                    f"code-interpreter.service={service_name}",
                    f"code-interpreter.sandbox={sandbox_id}",
                ]
            },
            sparse=True,
        ):
            container.remove(force=True)
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
            lost = client.containers.create(name="lost")
            uploaded = client.containers.files.create(kept.id, file=("note.txt", b"hello"))
            execute = f"{first.base_url}/v1/containers/{kept.id}/execute"
            # Hostile too: it rewrites what it can reach of its run folder.
            ran = httpx.post(
                execute,
                json={
                    "code": "x = 42\nopen('out.txt', 'w').write('o')\n"
                    "open('/run/sandbox/kernel.host.json', 'w').write('{not json')\n"
                    "open('/run/sandbox/kernel.json', 'w').write('{not json')"
                },
            )
            assert ran.json()["status"] == "ok"
            files_before = {f.id: f.path for f in client.containers.files.list(kept.id)}
        # The warm pool full and no refill under way, so that nothing starts meanwhile.
        healthz = f"{first.base_url}/healthz"
        wait_until(
            lambda: (
                (pool := httpx.get(healthz).json()["pool"])["ready"] == pool["target"]
                and not pool["starting"]
            ),
            timeout_s=120,
        )
        before = sandboxes_of(service_name)
    finally:
        first.signal(signal.SIGKILL)

    # Killed: nothing was cleaned up, the containers still run.
    assert sandboxes_of(service_name) == before
    records = tmp_path / "data" / "sessions"
    kept_sandbox = json.loads((records / f"{kept.id}.json").read_text())["sandbox_id"]
    lost_sandbox = json.loads((records / f"{lost.id}.json").read_text())
    warm_before = before - {kept_sandbox, lost_sandbox["sandbox_id"]}
    assert warm_before  # the pool's ready ones
    # While the service is down, one session's container goes away.
    remove_sandbox(service_name, lost_sandbox["sandbox_id"])

    second = ServiceProcess.serve(tmp_path, service_name, "--cleanup-on-exit").start()
    try:
        second.wait_healthy()
        client = OpenAI(base_url=f"{second.base_url}/v1", api_key="none", max_retries=0)
        with client:
            assert client.containers.retrieve(kept.id).name == "kept"
            with pytest.raises(openai.NotFoundError) as gone:
                client.containers.retrieve(lost.id)
            assert gone.value.code == "container_expired"
            assert [c.id for c in client.containers.list()] == [kept.id]
            execute = f"{second.base_url}/v1/containers/{kept.id}/execute"
            ran = httpx.post(execute, json={"code": "print(x)"}, timeout=60).json()
            assert ran["outputs"] == [{"type": "stream", "name": "stdout", "text": "42\n"}]
            assert ran["notice"] is None
            files_after = {f.id: f.path for f in client.containers.files.list(kept.id)}
            assert files_after == files_before
            content = client.containers.files.content.retrieve(uploaded.id, container_id=kept.id)
            assert content.read() == b"hello"
        # The old warm sandbox was nobody's: removed. The session's container stayed.
        after = sandboxes_of(service_name)
        assert kept_sandbox in after and lost_sandbox["sandbox_id"] not in after
        assert not after & warm_before
    finally:
        # uvicorn shuts down cleanly, then re-raises the signal it caught.
        assert second.signal(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in second.log.read_text()
    # Stopped with --cleanup-on-exit: every container is gone.
    assert not sandboxes_of(service_name)
