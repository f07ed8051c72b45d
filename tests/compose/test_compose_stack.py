"""The compose stack, for real: images built offline, ``up`` with the host-networking
override, healthchecks that run code, a Responses API request through the ``openai``
SDK, re-adoption after a crash, and ``down`` leaving no sandbox and no ipc folder.

The stack gets its own project name, ports, run root and service name, so it never
meets a developer's ``make run`` or ``docker compose up``. Tests run in file order and
share one stack; the last one takes it down.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.conftest import REPO, docker_containers, free_port, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

FILES = ["-f", "compose.yaml", "-f", "compose.hostnet.yaml"]
# Generous: the first run on a fresh machine builds every image inside `up`.
HEALTHY_WITHIN_S = 900.0


def compose_command() -> list[str]:
    """Compose v2 where it is, else docker-compose 1.29: the stack must work with both."""
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return ["docker", "compose"] if v2.returncode == 0 else ["docker-compose"]


@pytest.fixture(scope="session")
def compose() -> list[str]:
    # What a person runs first (docs/compose.md): wheelhouses, base image, a Compose.
    subprocess.run(["bash", "scripts/compose_images.sh"], cwd=REPO, check=True)
    return compose_command()


@dataclass
class Stack:
    compose: list[str]
    env: dict[str, str]
    service_name: str
    run_root: Path
    api_url: str

    def run(self, *args: str, files: list[str] = FILES) -> str:
        done = subprocess.run(
            [*self.compose, *files, *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            message = f"compose {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
            if args[0] == "up":  # an unhealthy dependency: its logs say why
                message += self.run("logs", "--no-color", "--tail", "40")
            raise AssertionError(message)
        return done.stdout

    def container(self, service: str) -> str:
        # -a: Compose v2 lists only running containers otherwise.
        return self.run("ps", "-a", "-q", service).strip()

    def inspect(self, service: str) -> dict:
        container = self.container(service)
        if not container:
            return {}
        out = subprocess.run(
            ["docker", "inspect", container], capture_output=True, text=True, check=True
        ).stdout
        return json.loads(out)[0]

    def state(self, service: str) -> dict:
        return self.inspect(service).get("State", {})

    def wait_healthy(self, *services: str) -> None:
        deadline = time.monotonic() + HEALTHY_WITHIN_S
        restarts = {service: self.inspect(service).get("RestartCount", 0) for service in services}
        while True:
            seen = {service: self.inspect(service) for service in services}
            states = {service: found.get("State", {}) for service, found in seen.items()}
            if all(s.get("Health", {}).get("Status") == "healthy" for s in states.values()):
                return
            # A service that keeps failing (exits, or its restart policy keeps bringing it
            # back) will not get better by waiting.
            broken = [
                name
                for name, s in states.items()
                if s.get("Health", {}).get("Status") == "unhealthy"
                or s.get("Status") == "exited"
                or seen[name].get("RestartCount", 0) >= restarts[name] + 2
            ]
            if broken or time.monotonic() > deadline:
                raise AssertionError(
                    f"not healthy: {', '.join(broken or services)}\n"
                    + self.run("logs", "--no-color", "--tail", "60")
                )
            time.sleep(2)

    def logs(self, service: str) -> str:
        """A service's log, for a failure's message: it says what the service was doing."""
        return self.run("logs", "--no-color", "--timestamps", service)

    def sandboxes(self) -> list[str]:
        return docker_containers(self.service_name)

    def run_folders(self) -> list[str]:
        return sorted(p.name for p in self.run_root.iterdir()) if self.run_root.exists() else []


@pytest.fixture(scope="module")
def stack(compose: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    project = f"citest{os.getpid()}{secrets.token_hex(3)}"
    api_port, model_port = free_port(), free_port()
    run_root = tmp_path_factory.mktemp("compose") / "run"
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": project,
        "API_PORT": str(api_port),
        "MODEL_PORT": str(model_port),
        "MODEL_URL": f"http://127.0.0.1:{model_port}",
        "CPU_MODEL": "demo",
        "RUN_ROOT": str(run_root),
        "SERVICE_NAME": project,
        # Healthchecks often, so waiting for health takes seconds rather than minutes.
        "HEALTH_INTERVAL": "3s",
        "POOL_SIZE": "1",
    }
    stack = Stack(compose, env, project, run_root, f"http://127.0.0.1:{api_port}")
    try:
        # --build: images left by an earlier run may predate this checkout.
        stack.run("up", "-d", "--build")
        stack.wait_healthy("model", "api")
        yield stack
    finally:
        with contextlib.suppress(AssertionError):
            stack.run("down", "--volumes", "--timeout", "60")
        # Whatever a failed test left behind, so that it does not outlive the run.
        for container in stack.sandboxes():
            subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
        shutil.rmtree(run_root, ignore_errors=True)


def execute(http: httpx.Client, container_id: str, code: str) -> dict:
    response = http.post(f"/v1/containers/{container_id}/execute", json={"code": code})
    response.raise_for_status()
    return response.json()


def result_text(execution: dict) -> str | None:
    return next(
        (o["data"].get("text/plain") for o in execution["outputs"] if o["type"] == "result"),
        None,
    )


def test_the_healthchecks_run_code(stack: Stack) -> None:
    """Healthy means what the healthchecks claim: 1+1 ran in a sandbox of this stack."""
    state = stack.state("api")
    log = state["Health"]["Log"]
    assert log and log[-1]["ExitCode"] == 0
    response = httpx.get(f"{stack.api_url}/readyz", timeout=60)
    assert response.json() == {"status": "ready"}
    # The sandbox-image service built (or found) the image and exited successfully.
    builder = stack.state("sandbox-image")
    assert builder["Status"] == "exited" and builder["ExitCode"] == 0


def test_responses_api_with_code_interpreter(stack: Stack) -> None:
    client = openai.OpenAI(base_url=f"{stack.api_url}/v1", api_key="unused", timeout=600)
    response = client.responses.create(
        model="demo",
        input="What is 123 * 456?",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        temperature=0,
    )
    assert "56088" in response.output_text, response.model_dump_json(indent=2)
    # The answer came from code the model ran in one of this stack's sandboxes.
    assert any(item.type == "code_interpreter_call" for item in response.output)


def test_a_crashed_api_restarts_and_readopts_live_sessions(stack: Stack) -> None:
    with httpx.Client(base_url=stack.api_url, timeout=120) as http:
        created = http.post("/v1/containers", json={"name": "survivor"})
        created.raise_for_status()
        container_id = created.json()["id"]
        assert execute(http, container_id, "x = 41")["status"] == "ok"

        # A crash, not a stop: the engine sees the api's init die, so the restart policy
        # applies (`docker kill` or `compose stop` would count as stopping it on purpose).
        before = stack.state("api")
        os.kill(before["Pid"], signal.SIGKILL)
        wait_until(
            lambda: stack.state("api").get("StartedAt") != before["StartedAt"], timeout_s=120
        )
        stack.wait_healthy("api")

        # Same kernel, same variables: the session was re-adopted, not recreated.
        assert result_text(execute(http, container_id, "x + 1")) == "42"


def test_stopping_the_api_leaves_no_sandbox(stack: Stack) -> None:
    with httpx.Client(base_url=stack.api_url, timeout=120) as http:
        http.post("/v1/containers", json={"name": "to-be-ended"}).raise_for_status()
    assert stack.sandboxes() and stack.run_folders()

    # A graceful stop: the api ends its sessions and its warm pool itself (the janitor
    # is still running, so it is not the one that cleaned up).
    stack.run("stop", "api")
    assert stack.state("janitor")["Status"] == "running"
    assert stack.sandboxes() == [], stack.logs("api")
    assert stack.run_folders() == [], stack.logs("api")


def test_down_after_a_killed_api_leaves_no_sandbox_and_no_ipc_folder(stack: Stack) -> None:
    stack.run("up", "-d")
    stack.wait_healthy("api")
    with httpx.Client(base_url=stack.api_url, timeout=120) as http:
        http.post("/v1/containers", json={"name": "orphan"}).raise_for_status()

    # Killed on purpose, so not restarted: its sandboxes run on with nobody to end them...
    stack.run("kill", "api")
    assert stack.sandboxes() and stack.run_folders()

    # ...until the stack goes down, when the janitor removes them.
    stack.run("down", "--timeout", "60")
    assert stack.sandboxes() == []
    assert stack.run_folders() == []


def test_gpu_and_vllm_profiles_config(compose: list[str]) -> None:
    """The GPU and vLLM profiles cannot run here (no GPU, no registry to pull vLLM's image
    from); their configuration is validated."""
    for files in (["-f", "compose.yaml"], FILES):
        done = subprocess.run(
            [*compose, *files, "--profile", "gpu", "--profile", "vllm", "config"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        services = yaml.safe_load(done.stdout)["services"]
        gpu = services["model-gpu"]
        assert gpu["profiles"] == ["gpu"]
        assert gpu["deploy"]["resources"]["reservations"]["devices"] == [
            {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
        ]
        command = gpu["command"]
        assert command[command.index("--model") + 1] == "openai/gpt-oss-20b"
        assert command[command.index("--device") + 1] == "cuda"
        vllm = services["vllm"]
        assert vllm["profiles"] == ["vllm"]
        assert vllm["image"].startswith("vllm/vllm-openai:")
        assert vllm["command"][vllm["command"].index("--model") + 1] == "openai/gpt-oss-20b"
        assert "--enable-prompt-tokens-details" in vllm["command"]
        assert vllm["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
        # Without the profile the runner serves the demo model on the CPU.
        model = services["model"]
        assert "profiles" not in model
        assert model["command"][model["command"].index("--model") + 1] == "demo"
        assert model["command"][model["command"].index("--device") + 1] == "cpu"
