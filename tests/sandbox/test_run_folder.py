"""The run folder, the one host folder a sandbox can write, is a tiny tmpfs of its own:
filling it fills a megabyte, not the host's disk, and it is gone with the sandbox, or,
when the service was killed while making it, with the service's restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable

import pytest

from interpreter.config import Settings
from interpreter.sandboxes.docker_backend import DockerSandboxBackend
from tests.conftest import REPO
from tests.sandbox.conftest import StartSandbox

pytestmark = pytest.mark.docker


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root; CI runs as root")
async def test_filling_the_run_folder_fills_only_its_tmpfs(
    start_sandbox: StartSandbox, backend: DockerSandboxBackend
) -> None:
    sandbox = await start_sandbox()
    run_dir = sandbox.record.run_dir
    assert run_dir.is_mount()
    # The kernel's socket folder: the one part of the run folder it may write under
    # either runtime (under gVisor the rest is the agent's).
    result = await sandbox.execute(
        "try:\n"
        "    with open('/run/sandbox/sockets/fill', 'wb') as f:\n"
        "        f.write(b'x' * 50_000_000)\n"
        "except OSError as e:\n"
        "    print('refused:', e.strerror)\n",
        timeout_s=30,
    )
    assert "refused: No space left on device" in result.stdout
    # The kernel still answers through the same folder.
    assert (await sandbox.execute("print(6 * 7)", timeout_s=10)).stdout == "42\n"
    await backend.destroy(sandbox.id)
    assert not run_dir.is_mount()
    assert not run_dir.exists()


# A service process killed for real at the moment it asks the engine for the container:
# the folder and the host's connection file exist, no container does.
KILLED_WHILE_MAKING_A_SANDBOX = """
import os, signal, sys
from pathlib import Path
from docker.models.containers import ContainerCollection
from interpreter.sandboxes.base import SandboxSpec
from interpreter.sandboxes.docker_backend import DockerSandboxBackend

image, run_root, service_name = sys.argv[1:]
backend = DockerSandboxBackend(image=image, run_root=Path(run_root), service_name=service_name)
ContainerCollection.run = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
spec = SandboxSpec(memory_limit_bytes=2**28, cpus=1.0, pids_limit=64, data_size_bytes=2**24)
backend._create(spec)
"""


def test_a_service_killed_while_making_a_sandbox_finds_no_folder_after_its_restart(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    run_root = settings.run_root
    # Another service's sandbox being born meanwhile (sharing the root): a recent folder
    # that this service did not make, which its restart must leave alone.
    born_elsewhere = run_root / "0123456789abcdef"
    born_elsewhere.mkdir(parents=True)

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_MAKING_A_SANDBOX, settings.sandbox_image,
         str(run_root), settings.service_name],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = sorted(p.name for p in run_root.iterdir() if p != born_elsewhere)
    assert len(left) == 2 and left[1] == f"{left[0]}.kernel.json", left
    folder = run_root / left[0]
    assert folder.is_mount() == (os.geteuid() == 0)

    # Seconds later, the service starts again (a restart policy does not wait a minute).
    restarted = DockerSandboxBackend.from_settings(settings)
    try:
        restarted.check()
    finally:
        restarted.close_now()
    assert sorted(p.name for p in run_root.iterdir()) == [born_elsewhere.name]
    assert not folder.is_mount()
