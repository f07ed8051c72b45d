"""The run folder, the one host folder a sandbox can write, is a tiny tmpfs of its own:
filling it fills a megabyte, not the host's disk, and it is gone with the sandbox."""

from __future__ import annotations

import os

import pytest

from interpreter.sandboxes.docker_backend import DockerSandboxBackend
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
