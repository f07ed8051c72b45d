"""Hostile or careless code meets the limits: memory, processes, time, output. Each one
is contained in its own sandbox, which stays usable."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

import pytest

from interpreter.sandboxes.agent import AGENT_CONNECTIONS, AgentClient
from interpreter.sandboxes.docker_backend import (
    GVISOR,
    GVISOR_MAX_PROCESSES,
    DockerSandboxBackend,
)
from interpreter.sandboxes.outputs import Output, StreamOutput
from interpreter.sandboxes.sandbox import STATE_LOST_NOTICE, Sandbox

pytestmark = pytest.mark.docker

StartSandbox = Callable[..., Awaitable[Sandbox]]


async def test_memory_hog_kills_only_its_kernel(start_sandbox: StartSandbox, runtime: str) -> None:
    sandbox = await start_sandbox()
    await sandbox.execute(
        "x = 1\nopen('/mnt/data/kept.txt', 'w').write('still here')", timeout_s=30
    )
    hog = await sandbox.execute(
        "blocks = []\nwhile True:\n    blocks.append(b'x' * (32 << 20))", timeout_s=60
    )
    if runtime == "runsc":
        # gVisor: the agent limits each process's address space, so the hog meets a
        # MemoryError before the sandbox meets the host's limit. The kernel lives on.
        assert hog.status == "error"
        assert hog.error is not None and hog.error.ename == "MemoryError"
        after = await sandbox.execute("del blocks\nprint(x)", timeout_s=30)
        assert after.stdout == "1\n"
        assert not after.kernel_restarted
        return
    assert hog.status == "died"
    assert hog.kernel_restarted
    assert hog.error is not None and hog.error.ename == "KernelDied"

    # The container lives on with a new kernel: variables gone, files kept, and the
    # next result says so.
    after = await sandbox.execute(
        "print(open('/mnt/data/kept.txt').read()); print('x' in globals())", timeout_s=30
    )
    assert after.status == "ok", after.outputs
    assert after.stdout == "still here\nFalse\n"
    assert after.kernel_restarted
    assert after.notice == STATE_LOST_NOTICE
    assert hog.restart_reason == "died"
    assert after.restart_reason is None  # the death was reported once, by the hog's result
    again = await sandbox.execute("1", timeout_s=30)
    assert again.notice is None
    health = await sandbox.agent.health()
    assert health.alive
    assert health.generation == 2


async def test_processes_over_the_limit_together_lose_the_largest_not_the_sandbox(
    start_sandbox: StartSandbox,
) -> None:
    """Processes that each stay within their own limit, but not together. The largest
    are ended (by Linux under runc, where each is over the sandbox's memory; under
    gVisor by the agent, where four of them cross what the sandbox may use in all,
    and the host would otherwise end the whole sandbox, files and all), and the kernel
    keeps its state."""
    sandbox = await start_sandbox()
    started = await sandbox.execute(
        "import subprocess, sys\n"
        "x = 'kept'\n"
        "hold = \"import time; held = b'x' * (1100 << 20); time.sleep(600)\"\n"
        "children = [subprocess.Popen([sys.executable, '-c', hold]) for _ in range(4)]",
        timeout_s=30,
    )
    assert started.status == "ok", started.outputs
    ended = await sandbox.execute(
        "import time\n"
        "while all(child.poll() is None for child in children):\n"
        "    time.sleep(0.05)\n"
        "print(sorted({child.returncode for child in children if child.poll() is not None}))",
        timeout_s=60,
    )
    assert ended.stdout == "[-9]\n", ended.outputs
    after = await sandbox.execute("print(x)", timeout_s=30)
    assert after.stdout == "kept\n"
    assert not after.kernel_restarted


@pytest.mark.parametrize("runtime", ["runsc"])
async def test_many_processes_over_the_limit_under_gvisor_restart_the_kernel(
    start_sandbox: StartSandbox, runtime: str
) -> None:
    """Under gVisor, many processes that together cross what the sandbox may use (as a
    fork bomb's copies do): ending them one at a time would not keep up, so the agent
    ends them all and starts a fresh kernel. The sandbox and its files live on, where
    the host would have ended it whole. (Under runc, Linux ends processes one by one.)"""
    sandbox = await start_sandbox()
    await sandbox.execute(
        "x = 1\nopen('/mnt/data/kept.txt', 'w').write('still here')", timeout_s=30
    )
    result = await sandbox.execute(
        "import os, time\n"
        "for _ in range(40):\n"
        "    if os.fork() == 0:\n"
        "        held = b'x' * (150 << 20)\n"
        "        time.sleep(600)\n"
        "time.sleep(600)",
        timeout_s=120,
    )
    assert result.status == "died", result.outputs
    after = await sandbox.execute(
        "import os\n"
        "print(open('/mnt/data/kept.txt').read(), 'x' in globals())\n"
        "print(len([p for p in os.listdir('/proc') if p.isdigit()]))",
        timeout_s=30,
    )
    assert after.stdout == "still here False\n2\n"


async def test_fork_bomb_is_contained(start_sandbox: StartSandbox, runtime: str) -> None:
    pids_limit = 64
    # gVisor sandboxes get fewer tasks: runsc leaves host tasks behind for each one.
    tasks = min(pids_limit, GVISOR_MAX_PROCESSES) if runtime == GVISOR else pids_limit
    sandbox = await start_sandbox(pids_limit=pids_limit)
    await sandbox.execute("x = 'kept'", timeout_s=30)
    # Bounded on purpose: children sleep instead of forking on, so the test cannot hurt
    # the machine even if the limit were missing. The cell holds every pid until the
    # test lets it go (a file in /mnt/data).
    counted = asyncio.Event()

    async def on_output(output: Output) -> None:
        if isinstance(output, StreamOutput) and "refused" in output.text:
            counted.set()

    bomb = asyncio.create_task(
        sandbox.execute(
            "import os, time\n"
            "children, refused = 0, None\n"
            "for _ in range(1000):\n"
            "    try:\n"
            "        pid = os.fork()\n"
            "    except OSError as exc:\n"
            "        refused = type(exc).__name__\n"
            "        break\n"
            "    if pid == 0:\n"
            "        time.sleep(120)\n"
            "        os._exit(0)\n"
            "    children += 1\n"
            "print(children, 'refused', refused, flush=True)\n"
            "while not os.path.exists('/mnt/data/release'):\n"
            "    time.sleep(0.01)",
            timeout_s=120,
            on_output=on_output,
        )
    )
    await asyncio.wait_for(counted.wait(), timeout=60)
    # The agent answers new connections while every pid is taken (it could not start
    # a thread for them).
    fresh = AgentClient(sandbox.record.run_dir / "agent.sock")
    try:
        statuses = await asyncio.gather(*(fresh.health() for _ in range(AGENT_CONNECTIONS)))
        assert all(status.alive for status in statuses)
        await fresh.write_file("/mnt/data/release", b"")
    finally:
        await fresh.close()
    result = await bomb
    assert result.status == "ok", result.outputs
    children, _, refused = result.stdout.split()
    assert int(children) < tasks
    assert refused == "BlockingIOError"

    # The copies ended with their cell: the agent and the kernel remain, state kept.
    after = await sandbox.execute(
        "import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]), x)", timeout_s=30
    )
    assert (after.stdout, after.stderr) == ("2 kept\n", "")
    # A restart ends everything but the agent, too: here, a process of its own.
    await sandbox.execute("import subprocess\nsubprocess.Popen(['sleep', '600'])", timeout_s=30)
    await sandbox.restart()
    after = await sandbox.execute(
        "import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]))", timeout_s=30
    )
    assert after.status == "ok", after.outputs
    assert int(after.stdout) == 2


async def test_endless_loop_is_interrupted_and_state_kept(
    start_sandbox: StartSandbox, backend: DockerSandboxBackend, runtime: str
) -> None:
    sandbox = await start_sandbox()
    # How long an interrupt is given follows the runtime, which the records carry, the
    # new one and the listed one alike (a restarted service adopts listed ones).
    listed = [record for record in await backend.list() if record.id == sandbox.id]
    assert [record.runtime for record in listed] == [runtime] and sandbox.record.runtime == runtime
    await sandbox.execute("x = 'kept'", timeout_s=30)
    looped = await sandbox.execute("while True: pass", timeout_s=1)
    assert looped.status == "timeout"
    assert not looped.kernel_restarted
    assert looped.error is not None and looped.error.ename == "KeyboardInterrupt"
    after = await sandbox.execute("print(x)", timeout_s=30)
    assert after.stdout == "kept\n"
    assert not after.kernel_restarted


async def test_code_that_ignores_interrupts_gets_a_new_kernel(
    start_sandbox: StartSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = await start_sandbox()
    caplog.set_level(logging.WARNING, logger="interpreter.sandboxes.sandbox")
    await sandbox.execute("x = 'lost'", timeout_s=30)
    stubborn = await sandbox.execute(
        "import time\n"
        "while True:\n"
        "    try:\n"
        "        time.sleep(0.05)\n"
        "    except KeyboardInterrupt:\n"
        "        pass",
        timeout_s=1,
    )
    assert stubborn.status == "timeout"
    assert stubborn.kernel_restarted
    assert stubborn.notice == STATE_LOST_NOTICE
    assert stubborn.restart_reason == "timeout"
    # The log says what the kernel was doing when it was replaced: running its loop or
    # asleep in it, and alone (a kernel has no other processes here).
    (forced,) = [r.getMessage() for r in caplog.records if "did not stop" in r.getMessage()]
    assert re.search(r"\(kernel [RS]\b.*; other processes: none\)$", forced), forced
    after = await sandbox.execute("print('x' in globals())", timeout_s=30)
    assert after.stdout == "False\n"


async def test_kernel_dying_while_idle_is_noticed(start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox()
    started = await sandbox.execute(
        "import os, threading\nx = 1\nthreading.Timer(0.2, os._exit, [3]).start()", timeout_s=30
    )
    assert started.status == "ok"
    # Wait for the agent to notice the death and start the next kernel.
    health = await sandbox.agent.health()
    deadline = asyncio.get_running_loop().time() + 30
    while not (health.generation == 2 and health.alive):
        assert asyncio.get_running_loop().time() < deadline, f"no new kernel: {health}"
        await asyncio.sleep(0.05)
        health = await sandbox.agent.health()
    assert health.last_exit == 3
    after = await sandbox.execute("print('x' in globals())", timeout_s=30)
    assert after.status == "ok"
    assert after.stdout == "False\n"
    assert after.notice == STATE_LOST_NOTICE
    assert after.restart_reason == "died"


async def test_abandoned_execution_is_stopped_before_the_next_one(
    start_sandbox: StartSandbox,
) -> None:
    """A caller that goes away at once (cancelled, and cancelled again by clean-up code)
    leaves no execution behind: it is interrupted, even when the interrupt arrives before
    the kernel has begun to run the code, and the state is kept."""
    sandbox = await start_sandbox()
    await sandbox.execute("x = 'kept'", timeout_s=30)
    for _ in range(3):
        abandoned = asyncio.create_task(
            sandbox.execute("import time\ntime.sleep(60)", timeout_s=120)
        )
        await asyncio.sleep(0)  # sent; the kernel may not have started on it yet
        abandoned.cancel()
        await asyncio.sleep(0.05)
        abandoned.cancel()
        with pytest.raises(asyncio.CancelledError):
            await abandoned
        after = await sandbox.execute("print(x)", timeout_s=30)
        assert after.status == "ok", after.outputs
        assert after.stdout == "kept\n"
        assert not after.kernel_restarted
    assert (await sandbox.agent.health()).generation == 1


async def test_interrupts_outside_the_code_cost_nothing(start_sandbox: StartSandbox) -> None:
    """Interrupts sent without pause, so that some land in the kernel's own code around
    each execution (before the code starts, while the reply is sent): every execution
    still ends with a reply, and the kernel and its state live on."""
    sandbox = await start_sandbox()
    await sandbox.execute("n = 0", timeout_s=30)
    statuses = []
    for _ in range(40):
        running = asyncio.create_task(sandbox.execute("n += 1", timeout_s=20))
        while not running.done():
            await sandbox.agent.interrupt()
            await asyncio.sleep(0)
        statuses.append(running.result().status)
    assert set(statuses) <= {"ok", "error"}, statuses  # error: interrupted inside the code
    after = await sandbox.execute("print(n)", timeout_s=30)
    assert after.status == "ok", after.outputs
    assert not after.kernel_restarted
    # An interrupt may land after the addition, still inside the code: it counts too.
    assert statuses.count("ok") <= int(after.stdout) <= len(statuses)
    assert (await sandbox.agent.health()).generation == 1
