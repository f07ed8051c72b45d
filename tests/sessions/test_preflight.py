"""Settings that cannot work stop ``python -m interpreter serve`` before it binds its port,
with one sentence that says why: a setting that is not a value it can take, a remote
Docker engine, a missing sandbox image, and limits the engine cannot give."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import docker_containers, engine_info
from tests.sessions.service_process import ServiceProcess

pytestmark = [pytest.mark.docker]


def test_settings_that_cannot_work_stop_the_start_in_one_sentence(
    tmp_path: Path, run_id: str
) -> None:
    info = engine_info()
    cpus, memory_gib = int(info["NCPU"]), int(info["MemTotal"]) / 1024**3
    cases = {
        "setting": (
            {"model_process": "bogus"},
            "Cannot start: INTERPRETER_MODEL_PROCESS: Input should be 'own' or 'inline' "
            "(it is 'bogus').",
        ),
        "tcp": (
            {"docker_host": "tcp://10.1.2.3:2375"},
            "Cannot start: INTERPRETER_DOCKER_HOST=tcp://10.1.2.3:2375 names a Docker engine "
            "reached over the network, which cannot run this service's sandboxes",
        ),
        "ssh": (
            {"docker_host": "ssh://builder@10.1.2.3"},
            "Cannot start: INTERPRETER_DOCKER_HOST=ssh://builder@10.1.2.3 names a Docker "
            "engine reached over the network",
        ),
        "image": (
            {"sandbox_image": "code-interpreter-sandbox:no-such-tag"},
            "Cannot start: the sandbox image code-interpreter-sandbox:no-such-tag is missing; "
            "run `make setup` to build it",
        ),
        "cpus": (
            {"cpus": str(cpus + 1)},
            f"Cannot start: INTERPRETER_CPUS={cpus + 1} is more than the {cpus} CPUs the "
            f"Docker engine has, so no sandbox could start: set it to at most {cpus}.",
        ),
        "memory": (
            {"memory_limit": f"{int(memory_gib) + 1}g"},
            f"Cannot start: INTERPRETER_MEMORY_LIMIT={int(memory_gib) + 1}g is more than the "
            f"{memory_gib:.1f} GiB of memory the Docker engine has",
        ),
    }
    # All at once: each is a Python start-up, a few seconds on a loaded machine.
    started = {}
    for name, (settings, _) in cases.items():
        root = tmp_path / name
        root.mkdir()
        service = ServiceProcess.serve(root, f"{run_id}-preflight-{name}", **settings)
        process = subprocess.Popen(
            service.command, env=service.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        started[name] = (service, process)
    for name, (service, process) in started.items():
        out, err = process.communicate(timeout=120)
        expected = cases[name][1]
        lines = err.decode().strip().splitlines()
        assert process.returncode == 1, (name, err.decode())
        # One sentence, the last line, and nothing served before it.
        assert lines[-1].startswith(expected), (name, lines[-1])
        assert lines[-1].count(". ") == 0 and lines[-1].endswith("."), lines[-1]
        assert "Uvicorn running" not in err.decode() + out.decode()
        assert docker_containers(service.env["INTERPRETER_SERVICE_NAME"]) == []
