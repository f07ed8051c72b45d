"""Sessions over time: the warm pool, idle expiry, kernel crashes, interrupts, restarts,
and the health, readiness and metrics endpoints that report on them."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import threading
from collections.abc import Callable

import openai
import pytest

from interpreter.config import Settings
from interpreter.metrics import Metrics
from interpreter.sandboxes.docker_backend import DockerSandboxBackend
from interpreter.sessions.manager import SessionManager
from tests.conftest import docker_containers, wait_until
from tests.sessions.conftest import StartService

pytestmark = pytest.mark.docker


def test_pool_claims_and_refills(start_service: StartService) -> None:
    service = start_service(pool_size=2)
    wait_until(lambda: service.health()["pool"]["ready"] == 2, timeout_s=120)
    pooled = {s.id for s in service.manager.pool._ready}
    assert len(pooled) == 2

    client = service.client()
    claimed = [client.containers.create(name=f"warm{i}") for i in range(3)]
    # Claims come from the pool as long as it has sandboxes, then start cold; each
    # sandbox goes to one container only.
    sandbox_ids = [service.manager.get(c.id, None).sandbox.id for c in claimed]
    assert len(set(sandbox_ids)) == 3
    assert set(sandbox_ids) & pooled == pooled
    assert service.metric("interpreter_sandbox_claims_total", 'source="pool"') >= 2
    assert [c.id for c in client.containers.list(order="asc").data] == [c.id for c in claimed]

    wait_until(lambda: service.health()["pool"]["ready"] == 2, timeout_s=120)
    assert service.metric("interpreter_pool_ready") == 2
    refilled = {s.id for s in service.manager.pool._ready}
    assert not refilled & set(sandbox_ids)
    # The pool's sandboxes are ready to run code; a claimed one is fresh.
    ran = service.execute(claimed[0].id, "print(len([k for k in globals() if k[0] != '_']))")
    assert ran["execution_count"] == 1


def test_the_pool_grows_with_claims_and_shrinks_back_when_quiet(
    start_service: StartService,
) -> None:
    service = start_service(pool_size=1, pool_max=3, pool_demand_window_s=30)
    wait_until(lambda: service.health()["pool"]["ready"] == 1, timeout_s=120)
    client = service.client()
    for i in range(3):
        client.containers.create(name=f"burst{i}")
    assert service.health()["pool"]["target"] == 3  # one plus three claims, at most three
    wait_until(lambda: service.health()["pool"]["ready"] == 3, timeout_s=180)
    # A quiet spell (the claims age out of the window) brings it back to its minimum.
    wait_until(lambda: service.health()["pool"]["ready"] == 1, timeout_s=120)
    assert service.health()["pool"]["target"] == 1
    wait_until(lambda: len(docker_containers(service.settings.service_name)) == 3 + 1, timeout_s=60)


def test_refill_failures_show_and_never_block_a_claim(start_service: StartService) -> None:
    # The service starts on an image of its own name, which then vanishes: from then on
    # the engine refuses every sandbox at once.
    image = f"{Settings().sandbox_image}-vanishing-{secrets.token_hex(3)}"
    subprocess.run(["docker", "tag", Settings().sandbox_image, image], check=True)
    try:
        service = start_service(pool_size=1, sandbox_image=image)
        wait_until(lambda: service.health()["pool"]["ready"] == 1, timeout_s=120)
    finally:
        subprocess.run(["docker", "rmi", image], check=True, capture_output=True)
    # The pooled sandbox is claimed; refilling it fails, again and again.
    service.client().containers.create(name="warm")
    wait_until(lambda: service.health()["pool"]["consecutive_failures"] >= 2, timeout_s=60)
    health = service.health()
    assert health["pool"]["ready"] == 0
    assert "could not start a sandbox container" in health["pool"]["last_error"]
    assert service.metric("interpreter_pool_refill_failures_total") >= 2
    # An empty pool falls back to a cold start, which fails with a clear 503.
    with pytest.raises(openai.APIStatusError) as failed:
        service.client().containers.create(name="cold")
    assert failed.value.status_code == 503
    assert failed.value.code == "sandbox_unavailable"


def test_idle_sessions_expire(start_service: StartService) -> None:
    # The reaper's own schedule is far off: the test reaps, with the clock it chooses.
    service = start_service(idle_ttl_minutes=1, reap_interval_s=3600)
    client = service.client()
    container = client.containers.create(name="short-lived")
    session = service.manager.get(container.id, None)
    before = session.expires_at()
    service.execute(container.id, "x = 1")
    assert session.expires_at() > before  # every use slides the deadline
    deadline = session.expires_at()

    assert service.reap(now=deadline - 1) == 0
    assert service.reap(now=deadline) == 1
    assert service.manager.live_count == 0
    with pytest.raises(openai.NotFoundError) as expired:
        client.containers.retrieve(container.id)
    assert expired.value.code == "container_expired"
    assert service.execute(container.id, "x")["error"]["code"] == "container_expired"
    assert client.containers.list().data == []
    wait_until(lambda: not docker_containers(service.settings.service_name), timeout_s=30)
    assert service.metric("interpreter_session_expiries_total") == 1
    # A client's own expires_after is honoured (in whole minutes, as OpenAI's API has it).
    kept = client.containers.create(
        name="longer", expires_after={"anchor": "last_active_at", "minutes": 2}
    )
    assert service.manager.get(kept.id, None).info.ttl_s == 120


def test_dead_kernel_is_replaced_and_files_kept(start_service: StartService) -> None:
    service = start_service(memory_limit="1g")
    container = service.client().containers.create(name="crash")
    service.execute(container.id, "x = 1\nopen('/mnt/data/kept.txt', 'w').write('kept')")
    died = service.execute(container.id, "import os\nos._exit(1)")
    assert died["http_status"] == 200
    assert died["status"] == "died"
    assert died["kernel_restarted"] is True
    assert died["outputs"][0]["ename"] == "KernelDied"
    after = service.execute(container.id, "print(open('/mnt/data/kept.txt').read(), 'x' in dir())")
    assert after["status"] == "ok"
    assert after["outputs"][0]["text"] == "kept False\n"
    assert after["notice"] and "restarted" in after["notice"]
    assert service.metric("interpreter_kernel_restarts_total", 'reason="died"') == 1


def test_interrupt_and_restart_endpoints(start_service: StartService) -> None:
    service = start_service()
    container = service.client().containers.create(name="interrupt")
    v1 = service.server.v1
    service.execute(container.id, "x = 'kept'")

    # The code says when it runs; then one interrupt stops it.
    code = "import time\nprint('started', flush=True)\ntime.sleep(120)"
    events = []
    with service.http.stream(
        "POST",
        f"{v1}/containers/{container.id}/execute",
        json={"code": code, "stream": True, "timeout": 300},
    ) as response:
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            events.append(json.loads(line.removeprefix("data: ")))
            if "started" in line and "text" in line:
                interrupted = service.http.post(f"{v1}/containers/{container.id}/interrupt")
                assert interrupted.json()["interrupted"] is True
    done = events[-1]
    assert done["status"] == "error"
    assert any(e.get("ename") == "KeyboardInterrupt" for e in events[:-1])
    assert service.execute(container.id, "print(x)")["outputs"][0]["text"] == "kept\n"

    restarted = service.http.post(f"{v1}/containers/{container.id}/restart")
    assert restarted.json() == {"id": container.id, "restarted": True}
    gone = service.execute(container.id, "print('x' in dir())")
    assert gone["outputs"][0]["text"] == "False\n"
    assert service.metric("interpreter_kernel_restarts_total", 'reason="request"') == 1


def test_health_readiness_and_metrics(start_service: StartService) -> None:
    service = start_service(pool_size=1)
    base = service.server.base_url
    ready = service.http.get(f"{base}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}
    health = service.health()
    assert health["status"] == "ok"
    assert health["sessions"] == 0  # the readiness check's session is gone
    container = service.client().containers.create(name="metrics")
    for _ in range(3):
        service.execute(container.id, "1+1")
    text = service.http.get(f"{base}/metrics").text
    for name in [
        "interpreter_live_sessions",
        "interpreter_pool_ready",
        "interpreter_executions_total",
        "interpreter_execution_seconds_bucket",
        "interpreter_sandbox_start_seconds_bucket",
        "interpreter_kernel_restarts_total",
        "interpreter_session_expiries_total",
        "interpreter_pool_refill_failures_total",
    ]:
        assert name in text, name
    assert service.metric("interpreter_live_sessions") == 1
    assert service.metric("interpreter_executions_total", 'status="ok"') == 4  # readyz's too
    assert service.metric("interpreter_execution_seconds_count") == 4
    # Readiness checks leave nothing behind, however often they run.
    for _ in range(2):
        assert service.http.get(f"{base}/readyz").status_code == 200
    assert len(list((service.settings.data_dir / "sessions").glob("*.json"))) == 1
    assert service.metric("interpreter_live_sessions") == 1


def test_stopping_while_the_pool_fills_leaves_no_container(start_service: StartService) -> None:
    service = start_service(pool_size=2, preimport="numpy,pandas,matplotlib.pyplot")
    # Stop while the first warm sandbox is still starting: the fixture's teardown
    # then checks that no container outlived the service.
    wait_until(lambda: bool(docker_containers(service.settings.service_name)), timeout_s=60)
    service.server.stop()
    wait_until(lambda: not docker_containers(service.settings.service_name), timeout_s=60)


async def test_a_session_ended_by_a_cancelled_caller_still_loses_its_container(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ending a session takes it off the table before its sandbox goes: a caller
    cancelled in between (the reaper when the service stops) must not leave the
    container running with nothing to remove it."""
    settings = make_settings(pool_size=0, preimport="")
    backend = DockerSandboxBackend.from_settings(settings)
    manager = SessionManager(settings, backend, Metrics())
    await manager.start()
    try:
        session = await manager.create(owner=None)
        assert len(docker_containers(settings.service_name)) == 1
        # The real disconnect, held until the caller has been cancelled.
        closing, cancelled = asyncio.Event(), asyncio.Event()
        close = session.sandbox.close

        async def close_after_the_cancel() -> None:
            closing.set()
            await cancelled.wait()
            await close()

        monkeypatch.setattr(session.sandbox, "close", close_after_the_cancel)
        ending = asyncio.create_task(manager.delete(session.id, None))
        await closing.wait()
        ending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ending
        cancelled.set()
    finally:
        # Sessions are kept for re-adoption; the ended one is not one of them.
        await manager.close()
        await backend.close()
    assert docker_containers(settings.service_name) == []


def test_deleting_a_busy_container_ends_its_execution(start_service: StartService) -> None:
    service = start_service()
    container = service.client().containers.create(name="busy")
    results: list[dict] = []
    runner = threading.Thread(
        target=lambda: results.append(
            service.execute(container.id, "import time\ntime.sleep(120)", timeout=300)
        )
    )
    runner.start()
    session = service.manager.get(container.id, None)
    wait_until(lambda: session.busy == 1, timeout_s=30)
    service.client().containers.delete(container.id)
    runner.join(timeout=120)
    assert results[0]["http_status"] == 404
    assert results[0]["error"]["code"] == "not_found"
    assert "deleted" in results[0]["error"]["message"]


def test_a_stream_client_going_away_interrupts_and_keeps_state(
    start_service: StartService,
) -> None:
    service = start_service()
    container = service.client().containers.create(name="went-away")
    service.execute(container.id, "x = 5")
    with service.http.stream(
        "POST",
        f"{service.server.v1}/containers/{container.id}/execute",
        json={"code": "print('go', flush=True)\nimport time\ntime.sleep(600)", "stream": True},
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and "go" in line:
                break  # leave while the code sleeps
    # The abandoned execution is interrupted (not left to run for ten minutes), and the
    # next one runs in full, with the state from before.
    after = service.execute(container.id, "print(x)")
    assert after["status"] == "ok", after
    assert after["outputs"] == [{"type": "stream", "name": "stdout", "text": "5\n"}]
    assert after["execution_count"] == 3
