"""The Docker engine stopped and started again under a running service: while it is down
the service answers 503 with Retry-After (never 500) and /readyz says why; afterwards
live sessions come back with their files (an engine with live-restore keeps its
containers) or are ended as expired with the reason, and a conversation's next turn
carries on in a new container, the model told.

This stops the engine every test run on the machine uses: it is kept down for as short
a time as the test allows, and always started again."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from interpreter.responses.code_tool import EXPIRED_NOTICE
from tests.conftest import engine_info, wait_until
from tests.doubles import ScriptedGenerator, final, python_call, served_over_http
from tests.sessions.conftest import remove_containers
from tests.sessions.docker_engine import engine_stopped
from tests.sessions.service_process import ServiceProcess

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PACE_S = 0.05
TOOLS: list[Any] = [{"type": "code_interpreter", "container": {"type": "auto"}}]


@pytest.fixture
def service_name(run_id: str) -> Iterator[str]:
    name = f"{run_id}-engine"
    yield name
    remove_containers(name)


class Watcher:
    """Calls the service over and over from a thread, keeping every status it answered."""

    def __init__(self, base_url: str, container_id: str) -> None:
        self.calls = [
            ("GET", f"{base_url}/v1/containers/{container_id}", None),
            ("GET", f"{base_url}/v1/containers/{container_id}/files", None),
            ("POST", f"{base_url}/v1/containers/{container_id}/execute", {"code": "1"}),
        ]
        self.answers: list[tuple[str, int, str | None]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=60) as http:
            # Paced: at full speed (a thousand 404s a second) it starved everything else
            # on a 2-core machine, the engine's restart included.
            while not self.stopped.wait(PACE_S):
                for method, url, body in self.calls:
                    try:
                        response = http.request(method, url, json=body)
                    except httpx.HTTPError as exc:
                        # A cut connection is as wrong as a 500; the test ends it last.
                        if not self.stopped.is_set():
                            self.answers.append((f"{method} {url}", 0, repr(exc)))
                        continue
                    retry_after = response.headers.get("retry-after")
                    self.answers.append((f"{method} {url}", response.status_code, retry_after))

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=120)


def test_an_engine_restart_never_gives_500_and_sessions_carry_on(
    tmp_path: Path, service_name: str
) -> None:
    info = engine_info()
    keeps_containers = bool(info.get("LiveRestoreEnabled"))
    runtimes = set(info.get("Runtimes") or {})
    double = ScriptedGenerator(
        [
            python_call("x = 1\nopen('/mnt/data/turn.txt', 'w').write('t')"),
            final("Done."),
            python_call("print(x)"),
            final("Carried on."),
        ]
    )
    with served_over_http(double) as model_url, contextlib.ExitStack() as closing:
        service = ServiceProcess.serve(
            tmp_path, service_name, "--cleanup-on-exit", model=model_url, reap_interval_s="1"
        ).start()
        watcher: Watcher | None = None
        try:
            service.wait_healthy()
            # Before it serves, `python -m interpreter serve` asks its model for a token.
            assert double.warm_ups == 1
            base = service.base_url
            api = closing.enter_context(
                OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0)
            )
            first = api.responses.create(model="m", input="Set x.", tools=TOOLS)
            conversation = first.output[0].container_id  # type: ignore[union-attr]
            box = api.containers.create(name="kept")
            api.containers.files.create(box.id, file=("kept.txt", b"kept"))
            watcher = Watcher(base, box.id)
            watcher.thread.start()
            wait_until(lambda: len(watcher.answers) >= 4)

            with engine_stopped():
                # Kept short: every test run on this machine is without an engine now.
                down = httpx.post(f"{base}/v1/containers", json={"name": "x"}, timeout=60)
                ready = httpx.get(f"{base}/readyz", timeout=60)
                turn = httpx.post(
                    f"{base}/v1/responses",
                    json={"model": "m", "input": "x?", "tools": TOOLS,
                          "previous_response_id": first.id},
                    timeout=60,
                )  # fmt: skip
            for answered in (down, turn):
                assert answered.status_code == 503, answered.text
                assert int(answered.headers["retry-after"]) > 0
                assert "Docker engine does not answer" in answered.json()["error"]["message"]
            assert ready.status_code == 503
            assert "Docker engine does not answer" in ready.json()["reason"]

            # Back: the sessions are found as they are, or ended saying why.
            def settled() -> bool:
                status = httpx.get(f"{base}/v1/containers/{box.id}")
                return keeps_containers == (status.status_code == 200)

            wait_until(settled, timeout_s=60)
            wait_until(lambda: httpx.get(f"{base}/readyz", timeout=60).status_code == 200, 120)
            watcher.stop()
            if keeps_containers:
                files = api.containers.files.list(box.id).data
                assert [f.path for f in files] == ["/mnt/data/kept.txt"]
            else:
                lost = httpx.get(f"{base}/v1/containers/{box.id}").json()["error"]
                assert lost["code"] == "container_expired"
                assert "was lost: its container exited" in lost["message"]
            after = api.responses.create(
                model="m", input="x?", tools=TOOLS, previous_response_id=first.id,
                include=["code_interpreter_call.outputs"],
            )  # fmt: skip
            assert after.status == "completed"
            logs = after.output[0].outputs[0].logs  # type: ignore[union-attr, index]
            if keeps_containers:
                assert after.output[0].container_id == conversation  # type: ignore[union-attr]
                assert logs == "1\n"
            else:
                assert after.output[0].container_id != conversation  # type: ignore[union-attr]
                assert "NameError" in logs and EXPIRED_NOTICE in double.prompt_text()
        finally:
            if watcher is not None:
                watcher.stop()
            service.signal(signal.SIGTERM)

    # Never a 500 from first to last, and every 503 said when to come back.
    assert watcher is not None
    assert {status for _, status, _ in watcher.answers} <= {200, 404, 503}, watcher.answers
    assert all(after for _, status, after in watcher.answers if status == 503)
    # runsc still there. (An engine that reread its configuration on SIGHUP, as set-up
    # has it do to register runsc, lists only the configured runtimes; started afresh,
    # it lists containerd's own too.)
    assert runtimes <= set(engine_info().get("Runtimes") or {})
