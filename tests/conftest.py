"""Shared fixtures: settings isolated per test run, the real Docker backend, and a real
HTTP server (uvicorn in a thread) that the official ``openai`` SDK talks to."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import secrets
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from interpreter.config import Settings

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pytest_configure(config: pytest.Config) -> None:
    """Unmount run-folder tmpfs mounts that killed earlier runs left in pytest's old temp
    folders: pytest deletes those folders, and a mount point in one stops it. Only those
    that no container uses: another test run on the same machine may be using its own."""
    base = Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}"
    with contextlib.suppress(OSError):
        mounts = [
            line.split()[1]
            for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1].startswith(f"{base}/")
        ]
        if not mounts:
            return
        in_use = run_dirs_in_use()
        for mount_point in mounts:
            if mount_point not in in_use:
                subprocess.run(["umount", "-l", mount_point], capture_output=True, check=False)


def run_dirs_in_use() -> set[str]:
    import docker

    client = docker.from_env()
    with contextlib.closing(client):
        return {
            (container.attrs.get("Labels") or {}).get("code-interpreter.run-dir", "")
            for container in client.containers.list(
                all=True, filters={"label": "code-interpreter.run-dir"}, sparse=True
            )
        }


@pytest.fixture(scope="session")
def run_id() -> str:
    """Names this test run's containers, so they never mix with a dev server's."""
    remove_containers_of_dead_test_runs()
    return f"ci-test-{os.getpid()}-{secrets.token_hex(3)}"


def remove_containers_of_dead_test_runs() -> None:
    """A test run that was killed leaves its sandboxes running; its name holds its pid,
    so a later run can tell they are orphans (and leaves a live run's alone)."""
    import docker

    client = docker.from_env()
    with contextlib.closing(client):
        for container in client.containers.list(
            all=True, filters={"label": "code-interpreter.service"}
        ):
            service = container.labels.get("code-interpreter.service", "")
            parts = service.split("-")
            if len(parts) < 3 or parts[:2] != ["ci", "test"] or not parts[2].isdigit():
                continue
            if not Path(f"/proc/{parts[2]}").exists():
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True)


def settings_for_test(root: Path, run_id: str, **overrides: Any) -> Settings:
    """A service's settings for a test: its folders under ``root``, a name of its own."""
    values: dict[str, Any] = {
        "data_dir": root / "data",
        "run_root": root / "run",
        "service_name": f"{run_id}-{secrets.token_hex(2)}",
        "pool_size": 1,
        # A fixed pool: tests of the pool's growth ask for a maximum.
        "pool_max": 0,
        "model": "none",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_settings(tmp_path: Path, run_id: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return settings_for_test(tmp_path, run_id, **overrides)

    return make


@dataclass
class RunningServer:
    base_url: str
    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop

    @property
    def v1(self) -> str:
        return f"{self.base_url}/v1"

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the server's event loop (its services live there)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=120)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


def start_server(app: FastAPI, timeout_s: float = 120.0) -> RunningServer:
    """Serve ``app`` on a free loopback port from a thread with its own event loop."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    loops: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        loops.append(asyncio.get_running_loop())
        await server.serve()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the test server failed to start")
        if time.monotonic() > deadline:
            raise TimeoutError("the test server did not start")
        time.sleep(0.02)
    return RunningServer(f"http://127.0.0.1:{port}", app, server, thread, loops[0])


@pytest.fixture
def serve() -> Iterator[Callable[[FastAPI], RunningServer]]:
    """Start servers for a test; all stop at its end (ending their sessions)."""
    servers: list[RunningServer] = []

    def start(app: FastAPI) -> RunningServer:
        running = start_server(app)
        servers.append(running)
        return running

    yield start
    for running in servers:
        running.stop()


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs: neither gone nor a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait_until(predicate: Callable[[], bool], timeout_s: float = 30.0, step_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(step_s)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as client:
        yield client


def docker_containers(service_name: str) -> list[str]:
    """Ids of the containers of one service instance, straight from the engine."""
    import docker

    client = docker.from_env()
    with contextlib.closing(client):
        # Sparse: no inspection of each container, which fails for one being removed.
        return [
            c.id
            for c in client.containers.list(
                all=True,
                filters={"label": f"code-interpreter.service={service_name}"},
                sparse=True,
            )
        ]


def engine_info() -> dict[str, Any]:
    """What the Docker engine says of itself (``docker info``), read now."""
    import docker

    client = docker.from_env()
    with contextlib.closing(client):
        info: dict[str, Any] = client.info()
        return info


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama.cpp's server on the demo model's GGUF (both built by
    scripts/build_llama_server.sh, which ``make test`` runs), on a free port."""
    built = subprocess.run(
        ["bash", str(REPO / "scripts" / "build_llama_server.sh")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    binary, gguf = built.stdout.split()
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            # Greedy by default (--temp 0), as the demo model is served in-process.
            [binary, "-m", gguf, "--host", "127.0.0.1", "--port", str(port), "-np", "4",
             "--swa-full", "-t", "1", "--temp", "0", "--no-webui"],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
