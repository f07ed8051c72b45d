"""Many sessions at once: every execution lands in its own session, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from interpreter.config import Settings
from interpreter.metrics import Metrics
from interpreter.sandboxes.docker_backend import DockerSandboxBackend
from interpreter.sessions.manager import SessionManager
from tests.sessions.conftest import StartService

pytestmark = pytest.mark.docker

SESSIONS = 20
EXECUTIONS = 10


@pytest.mark.slow
async def test_twenty_sessions_ten_executions_each(start_service: StartService) -> None:
    service = start_service(
        pool_size=2,
        max_sessions=SESSIONS + 2,
        memory_limit="512m",
        kernel_ready_timeout_s=180,
    )
    v1 = service.server.v1

    async def one_session(http: httpx.AsyncClient, number: int) -> list[str]:
        created = await http.post(f"{v1}/containers", json={"name": f"p{number}"})
        assert created.status_code == 200, created.text
        assert created.json()["memory_limit"] == "512m"
        container_id = created.json()["id"]
        seen = []
        for i in range(EXECUTIONS):
            code = f"seq = (seq if {i} else []) + [{i}]\nprint({number}, seq)"
            response = await http.post(
                f"{v1}/containers/{container_id}/execute", json={"code": code}
            )
            body = response.json()
            assert body["status"] == "ok", body
            seen.append(body["outputs"][0]["text"])
        return seen

    async with httpx.AsyncClient(
        timeout=300, limits=httpx.Limits(max_connections=2 * SESSIONS)
    ) as http:
        results = await asyncio.gather(*(one_session(http, n) for n in range(SESSIONS)))
    for number, seen in enumerate(results):
        assert seen == [f"{number} {list(range(i + 1))}\n" for i in range(EXECUTIONS)]
    assert service.manager.live_count == SESSIONS
    assert service.metric("interpreter_executions_total", 'status="ok"') == SESSIONS * EXECUTIONS


async def test_executions_in_one_session_run_in_arrival_order(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(pool_size=0, preimport="")
    backend = DockerSandboxBackend.from_settings(settings)
    manager = SessionManager(settings, backend, Metrics())
    await manager.start()
    try:
        session = await manager.create(owner=None, name="order")
        await manager.execute(session, "seq = []")
        # Queued together: each waits for the one before, in the order they came.
        tasks = [
            asyncio.create_task(
                manager.execute(
                    session, f"import time; time.sleep(0.01); seq.append({i}); len(seq)"
                )
            )
            for i in range(10)
        ]
        results = await asyncio.gather(*tasks)
        assert [r.outputs[0].data["text/plain"] for r in results] == [  # type: ignore[union-attr]
            str(i + 1) for i in range(10)
        ]
        final = await manager.execute(session, "seq")
        assert final.outputs[0].data["text/plain"] == str(list(range(10)))  # type: ignore[union-attr]
        assert session.busy == 0
    finally:
        await manager.close(end_sessions=True)
        await backend.close()
