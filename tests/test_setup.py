"""Set-up and the one command that runs the service: the sandbox image is there under
its content tag, and `make run` serves a /readyz that really ran code."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import docker
import httpx
import pytest

from interpreter.sandboxes.image import REPOSITORY, content_hash, default_tag
from tests.conftest import REPO, docker_containers, engine_info, free_port
from tests.sessions.conftest import remove_containers
from tests.sessions.service_process import ServiceProcess, service_env

pytestmark = pytest.mark.docker


def test_setup_builds_the_image_under_its_content_tag() -> None:
    done = subprocess.run(
        ["bash", "scripts/setup.sh"], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr
    tag = default_tag()
    assert tag == f"{REPOSITORY}:{content_hash()}"
    assert tag in done.stderr  # "ready: sandbox image <tag>"
    assert (REPO / ".build" / "sandbox-image").read_text().strip() == tag
    client = docker.from_env()
    try:
        image = client.images.get(tag)
    finally:
        client.close()
    assert tag in image.tags
    assert image.attrs["Config"]["User"] == "2000000:2000000"


def test_setup_registers_gvisor_when_asked() -> None:
    """With SETUP_RUNSC=1 (make test sets it) the engine has runsc, as the sandboxes
    need it: the ptrace platform, no network, sockets created inside on the host."""
    done = subprocess.run(
        ["bash", "scripts/setup.sh"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "SETUP_RUNSC": "1"},
    )
    assert done.returncode == 0, done.stderr
    runsc = engine_info()["Runtimes"]["runsc"]
    assert {"--platform=ptrace", "--network=none", "--host-uds=create"} <= set(
        runsc.get("runtimeArgs") or runsc.get("options", {}).get("runtimeArgs", [])
    )


@pytest.mark.slow
def test_make_run_serves_readyz(tmp_path: Path, run_id: str) -> None:
    service_name = f"{run_id}-make-run"
    port = free_port()
    service = ServiceProcess(
        ["make", "run", f"PORT={port}"],
        service_env(tmp_path, service_name),
        port,
        tmp_path / "make-run.log",
    )
    try:
        service.start()
        service.wait_healthy(timeout_s=600)
        ready = httpx.get(f"{service.base_url}/readyz", timeout=60)
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready"}
        service.signal(signal.SIGTERM)
        assert "Application shutdown complete" in service.log.read_text()
        # Stopped cleanly: the warm pool is gone and /readyz left nothing behind.
        assert docker_containers(service_name) == []
        assert not list((tmp_path / "data" / "sessions").glob("*.json"))
    finally:
        service.stop()
        leaked = remove_containers(service_name)
    assert not leaked
