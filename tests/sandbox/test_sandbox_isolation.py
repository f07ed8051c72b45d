"""What a sandbox's code cannot do: reach a network, write outside its data folders, run
as root, see another sandbox, or use the agent's file API to leave /mnt/data."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from interpreter.errors import FileNotFound, InvalidRequest, SandboxError, StorageFull
from interpreter.sandboxes.agent import AgentClient
from interpreter.sandboxes.docker_backend import (
    SANDBOX_UID,
    DockerSandboxBackend,
    host_owner_of_id,
)
from interpreter.sandboxes.sandbox import Sandbox

pytestmark = pytest.mark.docker

StartSandbox = Callable[..., Awaitable[Sandbox]]
T = TypeVar("T")


async def run_json(sandbox: Sandbox, code: str) -> object:
    """Run ``code``, which prints one JSON value, and return that value."""
    result = await sandbox.execute(code, timeout_s=30)
    assert result.status == "ok", result.outputs
    return json.loads(result.stdout)


async def test_no_network_no_root_no_writes_outside_data(start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox()
    network = await run_json(
        sandbox,
        "import json, socket\n"
        "outcomes = {}\n"
        "for host, port in [('1.1.1.1', 53), ('8.8.8.8', 443), ('172.17.0.1', 2375)]:\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=2).close()\n"
        "        outcomes[host] = 'connected'\n"
        "    except OSError as exc:\n"
        "        outcomes[host] = type(exc).__name__\n"
        "try:\n"
        "    socket.getaddrinfo('example.com', 80)\n"
        "    outcomes['dns'] = 'resolved'\n"
        "except OSError as exc:\n"
        "    outcomes['dns'] = type(exc).__name__\n"
        "import os\n"
        "outcomes['interfaces'] = sorted(os.listdir('/sys/class/net'))\n"
        "print(json.dumps(outcomes))",
    )
    assert isinstance(network, dict)
    assert "connected" not in network.values(), network
    assert network["dns"] != "resolved"
    assert network["interfaces"] == ["lo"]

    ids = await run_json(sandbox, "import os, json; print(json.dumps([os.getuid(), os.geteuid()]))")
    assert isinstance(ids, list)
    assert 0 not in ids

    writes = await run_json(
        sandbox,
        "import json, os\n"
        "outcomes = {}\n"
        "for folder in ['/', '/etc', '/usr', '/opt/sandbox', '/opt/sandbox/venv/lib', '/root',\n"
        "               '/var', '/home', '/run', '/mnt']:\n"
        "    try:\n"
        "        with open(os.path.join(folder, 'escape.txt'), 'w') as f:\n"
        "            f.write('x')\n"
        "        outcomes[folder] = 'written'\n"
        "    except OSError as exc:\n"
        "        outcomes[folder] = type(exc).__name__\n"
        "for folder in ['/mnt/data', '/tmp', '/dev/shm']:\n"
        "    with open(os.path.join(folder, 'fine.txt'), 'w') as f:\n"
        "        f.write('x')\n"
        "    outcomes[folder] = 'written'\n"
        "print(json.dumps(outcomes))",
    )
    assert isinstance(writes, dict)
    assert {folder for folder, outcome in writes.items() if outcome == "written"} == {
        "/mnt/data",
        "/tmp",
        "/dev/shm",
    }, writes
    # The writable places are small tmpfs mounts, not the host's disk.
    sizes = await run_json(
        sandbox,
        "import json, os\n"
        "print(json.dumps({p: os.statvfs(p).f_blocks * os.statvfs(p).f_frsize\n"
        "                  for p in ['/mnt/data', '/tmp', '/dev/shm']}))",
    )
    assert isinstance(sizes, dict)
    assert all(0 < size <= 256 << 20 for size in sizes.values()), sizes


async def test_a_crash_leaves_no_core_dump(start_sandbox: StartSandbox) -> None:
    # The limit is 0, soft and hard, so code inside cannot raise it; a process that
    # crashes (here in /mnt/data, the kernel's working folder) leaves nothing behind.
    crash = await run_json(
        sandbox := await start_sandbox(),
        "import json, os, resource, subprocess, sys\n"
        "outcomes = {'limit': resource.getrlimit(resource.RLIMIT_CORE)}\n"
        "try:\n"
        "    resource.setrlimit(resource.RLIMIT_CORE, (1 << 30, 1 << 30))\n"
        "    outcomes['raised'] = True\n"
        "except (ValueError, OSError):\n"
        "    outcomes['raised'] = False\n"
        "outcomes['exit'] = subprocess.run(\n"
        "    [sys.executable, '-c', 'import os; os.abort()'], cwd='/mnt/data'\n"
        ").returncode\n"
        "outcomes['files'] = os.listdir('/mnt/data')\n"
        "print(json.dumps(outcomes))",
    )
    assert crash == {"limit": [0, 0], "raised": False, "exit": -6, "files": []}
    assert (await sandbox.execute("print('alive')", timeout_s=30)).stdout == "alive\n"


async def test_sandboxes_do_not_see_each_other(start_sandbox: StartSandbox) -> None:
    first = await start_sandbox()
    second = await start_sandbox()
    await first.execute(
        "secret = 'first'\nopen('/mnt/data/secret.txt', 'w').write('first')\n"
        "open('/tmp/secret.txt', 'w').write('first')",
        timeout_s=30,
    )
    seen = await run_json(
        second,
        "import json, os\n"
        "print(json.dumps({'variable': 'secret' in globals(),\n"
        "                  'data': os.listdir('/mnt/data'),\n"
        "                  'tmp': os.path.exists('/tmp/secret.txt'),\n"
        "                  'pids': sorted(int(p) for p in os.listdir('/proc') if p.isdigit())}))",
    )
    assert isinstance(seen, dict)
    assert seen["variable"] is False
    assert seen["data"] == []
    assert seen["tmp"] is False
    # Its own pid namespace: the agent as pid 1 and its kernel, nothing of the host.
    assert seen["pids"][0] == 1
    assert len(seen["pids"]) < 10
    assert (await first.agent.read_file("/mnt/data/secret.txt")) == b"first"
    with pytest.raises(Exception, match="No such file"):
        await second.agent.read_file("/mnt/data/secret.txt")


async def test_agent_file_api_stays_inside_data(start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox()
    await sandbox.execute(
        "import os\n"
        "os.symlink('/etc/passwd', '/mnt/data/passwd')\n"
        "os.symlink('/', '/mnt/data/root')\n"
        "open('/mnt/data/plain.txt', 'w').write('plain')",
        timeout_s=30,
    )
    listed = {f.path for f in await sandbox.agent.list_files()}
    assert listed == {"/mnt/data/plain.txt"}
    for path in ["../etc/passwd", "passwd", "root/etc/passwd", "..", "/mnt/data/../../etc/passwd"]:
        # Refused, or normalised by the client into a path the agent does not serve.
        with pytest.raises((InvalidRequest, FileNotFound)):
            await sandbox.agent.read_file(path)
    # Raw requests, as a hostile client of the socket would send them.
    transport = httpx.AsyncHTTPTransport(uds=str(sandbox.record.run_dir / "agent.sock"))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as raw:
        for url in ["/files/%2e%2e/etc/passwd", "/files/..%2fetc%2fpasswd", "/files/%00"]:
            response = await raw.get(url)
            assert response.status_code == 400, url
        response = await raw.put("/files/..%2f..%2ftmp%2fplanted", content=b"x")
        assert response.status_code == 400
    check = await sandbox.execute("import os; print(os.path.exists('/tmp/planted'))", timeout_s=30)
    assert check.stdout == "False\n"


async def test_an_upload_to_a_full_data_folder_is_refused_and_leaves_nothing(
    start_sandbox: StartSandbox,
) -> None:
    """The agent answers 507 without reading the whole upload; the answer must still
    arrive (not a reset connection), and no partial file stays behind."""
    sandbox = await start_sandbox()  # /mnt/data of 64 MiB
    filled = await sandbox.execute(
        "open('/mnt/data/fill.bin', 'wb').write(b'x' * (56 << 20))", timeout_s=60
    )
    assert filled.status == "ok", filled.outputs
    with pytest.raises(StorageFull):
        await sandbox.agent.write_file("/mnt/data/big.bin", b"y" * (24 << 20))
    assert [f.path for f in await sandbox.agent.list_files()] == ["/mnt/data/fill.bin"]
    left = await sandbox.execute("import os; print(os.listdir('/mnt/data'))", timeout_s=30)
    assert left.stdout == "['fill.bin']\n"
    written = await sandbox.agent.write_file("/mnt/data/small.txt", b"fits")
    assert written.bytes == 4


FAKE_AGENT = """
import json, os, socketserver, threading
from http.server import BaseHTTPRequestHandler

class Lie(BaseHTTPRequestHandler):
    def do_GET(self):
        files = [{"path": "/../../decoy", "bytes": 1, "mtime": 0},
                 {"path": "/./decoy", "bytes": 1, "mtime": 0},
                 {"path": "/sub//decoy", "bytes": 1, "mtime": 0},
                 {"path": "/ok.txt", "bytes": 2, "mtime": 0},
                 "not even an object"]
        body = json.dumps({"files": files} if self.path == "/files" else ["nonsense"]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

fake = Server("/run/sandbox/sockets/fake.sock", Lie)
threading.Thread(target=fake.serve_forever, daemon=True).start()
"""


async def test_a_hostile_sandbox_cannot_aim_the_service_at_the_host(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """Code in a sandbox can put what it likes in its run folder, where the agent's socket
    is: a fake agent that lists paths leading out of /mnt/data, or a link to a socket of
    the host. A client of such a path must use neither. (The agent takes its own path
    back within a second, see the next test; these clients are pointed at the sandbox's
    own paths to see what a client would meet meanwhile.)"""
    sandbox = await start_sandbox()
    decoy_path = tmp_path / "decoy.sock"
    decoy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    decoy.bind(str(decoy_path))
    decoy.listen(8)
    decoy.setblocking(False)
    # In the kernel's socket folder: under gVisor the rest of the run folder is the
    # agent's, and the kernel cannot write there.
    faked = AgentClient(sandbox.record.run_dir / "sockets" / "fake.sock")
    linked = AgentClient(sandbox.record.run_dir / "sockets" / "link.sock")
    try:
        started = await sandbox.execute(FAKE_AGENT, timeout_s=30)
        assert started.status == "ok", started.outputs
        listed = await faked.list_files()
        assert [f.path for f in listed] == ["/mnt/data/ok.txt"]
        with pytest.raises(SandboxError):
            await faked.health()  # an answer that is not the agent's
        for path in ["/mnt/data/../../decoy", "../decoy", "/mnt/data/a/../../decoy"]:
            with pytest.raises(InvalidRequest):
                await faked.read_file(path)

        made = await sandbox.execute(
            f"import os\nos.symlink({str(decoy_path)!r}, '/run/sandbox/sockets/link.sock')",
            timeout_s=30,
        )
        assert made.status == "ok", made.outputs
        with pytest.raises(SandboxError, match="replaced"):
            await linked.list_files()
        with pytest.raises(BlockingIOError):
            decoy.accept()  # nobody ever connected to the host's socket
    finally:
        await faked.close()
        await linked.close()
        decoy.close()


async def test_the_agent_takes_its_socket_back(start_sandbox: StartSandbox) -> None:
    """Removed, replaced by a link or by another socket: the agent's path leads to the
    agent again soon after, and the kernel still answers. (Under gVisor the sandbox
    cannot even remove a socket file of the host's.)"""
    sandbox = await start_sandbox()
    fresh = AgentClient(sandbox.record.run_dir / "agent.sock")
    try:
        for sabotage in [
            "os.remove(path)",
            "os.remove(path)\nos.symlink('/etc/passwd', path)",
            FAKE_AGENT + "os.replace('/run/sandbox/sockets/fake.sock', path)",
        ]:
            indented = sabotage.replace("\n", "\n    ")
            done = await sandbox.execute(
                f"import os\npath = '/run/sandbox/agent.sock'\n"
                f"try:\n    {indented}\nexcept PermissionError:\n    pass",
                timeout_s=30,
            )
            assert done.status == "ok", done.outputs
            health = await eventually(fresh.health, timeout_s=30)
            assert health.alive and health.generation == 1
        assert (await sandbox.execute("print(6 * 7)", timeout_s=30)).stdout == "42\n"
    finally:
        await fresh.close()


async def eventually(call: Callable[[], Awaitable[T]], timeout_s: float) -> T:
    """``call()``'s first answer that is not a SandboxError, retried until ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            return await call()
        except SandboxError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_the_sandbox_user_is_nobody_on_the_host(
    start_sandbox: StartSandbox, backend: DockerSandboxBackend, runtime: str
) -> None:
    """Seen from the host, what the sandbox's code makes belongs to no account; and the
    service refuses a sandbox uid that an account has."""
    sandbox = await start_sandbox()
    made = await sandbox.execute(
        "import os\nprint(os.getuid(), os.getgid())\n"
        "open('/run/sandbox/sockets/mine', 'w').write('x')",
        timeout_s=30,
    )
    assert made.stdout == f"{SANDBOX_UID} {SANDBOX_UID}\n"
    owner = (sandbox.record.run_dir / "sockets" / "mine").stat()
    assert (owner.st_uid, owner.st_gid) == (SANDBOX_UID, SANDBOX_UID)
    assert host_owner_of_id(SANDBOX_UID) is None
    with pytest.raises(KeyError):
        pwd.getpwuid(owner.st_uid)
    if runtime == "runc":  # under gVisor the sandbox's processes are not the host's
        assert SANDBOX_UID in _host_process_uids()

    taken = pwd.getpwuid(os.getuid()).pw_uid if os.geteuid() != 0 else 0
    refusing = DockerSandboxBackend(
        image=backend.image,
        run_root=backend.run_root,
        service_name=backend.service_name,
        runtime=runtime,
        uid=taken,
    )
    try:
        with pytest.raises(SandboxError, match="belongs to the user"):
            refusing.check()
    finally:
        await refusing.close()


def _host_process_uids() -> set[int]:
    uids = set()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, StopIteration):
            status = (entry / "status").read_text().splitlines()
            uids.add(int(next(line for line in status if line.startswith("Uid:")).split()[1]))
    return uids
