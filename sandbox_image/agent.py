"""The sandbox agent: PID 1 of every sandbox container.

It keeps one ipykernel running (restarting it when it dies, so that files in /mnt/data
outlive an out-of-memory kill, and ending every other process in the sandbox before each
new kernel), reaps orphaned processes as an init must, and answers a
small HTTP API on a unix socket in the bind-mounted run folder. The service uses that API
for what the kernel itself cannot do while it is busy: interrupting it, restarting it,
reporting whether it died, and moving files in and out of /mnt/data (a tmpfs, which
Docker's archive API cannot see).

Standard library only: it runs before, and independently of, the user's environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import resource
import secrets
import shutil
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote

RUN_DIR = Path(os.environ.get("SANDBOX_RUN_DIR", "/run/sandbox"))
DATA_DIR = Path(os.environ.get("SANDBOX_DATA_DIR", "/mnt/data"))
CONNECTION_FILE = RUN_DIR / "kernel.json"
AGENT_SOCKET = RUN_DIR / "agent.sock"
MAX_LISTED_FILES = 10_000
AGENT_WORKERS = 8
# Socket folders of earlier kernels (see RunFolder) start with this.
STALE_PREFIX = "stale-"
# How often the agent checks that its socket's path still leads to it.
KEEP_SOCKET_S = 1.0
# The user the kernel and everything it starts run as. The agent runs as that user too
# under runc; under gVisor as root (gVisor's, inside its sandbox), because gVisor lets a
# process kill or stop PID 1 of its own uid, which Linux does not.
KERNEL_UID = int(os.environ.get("SANDBOX_KERNEL_UID", os.getuid()))
KERNEL_GID = int(os.environ.get("SANDBOX_KERNEL_GID", os.getgid()))
KERNEL_COMMAND = [
    sys.executable,
    "-m",
    "ipykernel_launcher",
    "-f",
    str(CONNECTION_FILE),
    "--IPKernelApp.exec_lines=__import__('sandbox_startup').run()",
    # The kernel's descriptors 1 and 2 are routed per execution by cell_boundaries;
    # ipykernel's own capture would send them to whichever execution is current.
    "--IPKernelApp.capture_fd_output=False",
    "--HistoryManager.enabled=False",
]
# PID 1 of a pid namespace gets no signal from inside it that it does not handle; the
# agent handles none, so that code in the sandbox cannot stop it (SIGKILL from inside
# is refused by Linux; from outside, the engine's kill and remove still work). gVisor
# delivers them all, which is why the agent is another user there.
IGNORED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


class KernelSupervisor:
    """Starts the kernel, and a fresh one whenever it dies or a restart is asked for.

    Before each new kernel, every other process in the sandbox is ended: what the old
    kernel left behind (forked copies of itself, background servers, a fork bomb) must
    neither hold the sandbox's process slots nor write into the new kernel's executions.

    Starting a kernel needs a free pid. If none is free even then, the keeper thread
    tries again until one is, rather than failing for good. Deaths reach the keeper as
    events from the reaper, which never waits for the lock: ending the old processes
    waits for the reaper to collect them.
    """

    def __init__(self, before_kernel: Callable[[], None] | None = None) -> None:
        self.lock = threading.Lock()
        self.before_kernel = before_kernel
        self.pid: int | None = None  # the kernel's
        self.generation = 0
        self.started_at = 0.0
        self.last_exit: int | None = None
        self.restarts_on_death = 0
        self._exits: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
        self._wake = threading.Event()

    def start(self) -> None:
        with self.lock:
            self._start_fresh()
        # Started now, while pids are free: later there may be none for a new thread.
        threading.Thread(target=self._keep_alive, daemon=True).start()

    def _start_fresh(self) -> None:
        """Clear the sandbox of every process but the agent, then start a kernel (lock held)."""
        if not end_other_processes():
            print("agent: some processes outlived SIGKILL; starting anyway", file=sys.stderr)
        self._note_exits()  # the old ones': none of them is the new kernel's
        if self.before_kernel is not None:
            try:
                self.before_kernel()
            except OSError as exc:
                print(f"agent: could not tidy the run folder: {exc!r}", file=sys.stderr)
        try:
            self._spawn()
        except OSError:
            self.pid = None
            self._wake.set()

    def _spawn(self) -> None:
        # Wall-clock time is shared with the host, so it can tell whether the kernel
        # it is waiting on was replaced before or after its request was sent.
        started_at = time.time()
        pid = os.posix_spawn(
            sys.executable,
            [sys.executable, str(Path(__file__).resolve()), "kernel"],
            {**os.environ, "SANDBOX_KERNEL_GENERATION": str(self.generation + 1)},
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)],
            # A new session, so a stray os.killpg from user code cannot reach the agent;
            # and the signals the agent ignores back to normal for the user's processes.
            setsid=True,
            setsigdef=IGNORED_SIGNALS,
        )
        self.pid = pid
        self.generation += 1
        self.started_at = started_at

    def on_exit(self, pid: int, status: int) -> None:
        """Called by the reaper for every child that exits."""
        self._exits.put((pid, status))
        self._wake.set()

    def _keep_alive(self) -> None:
        while True:
            self._wake.wait(0.2)
            self._wake.clear()
            with self.lock:
                self._note_exits()
                if self.pid is None:
                    self._start_fresh()

    def _note_exits(self) -> None:
        while True:
            try:
                pid, status = self._exits.get_nowait()
            except queue.Empty:
                return
            if pid != self.pid:
                continue  # an orphan, or a kernel already replaced
            self.last_exit = os.waitstatus_to_exitcode(status)
            self.pid = None
            self.restarts_on_death += 1

    def restart(self) -> tuple[int, str]:
        """End the kernel and everything else in the sandbox; start a fresh kernel.
        Return its generation, and what the ended processes were doing."""
        with self.lock:
            self._note_exits()
            ended = describe_processes(self.pid)
            # The old kernel's exit is ignored in _note_exits: it is replaced here.
            self.pid = None
            self._start_fresh()
            return self.generation + (1 if self.pid is None else 0), ended

    def interrupt(self) -> bool:
        with self.lock:
            self._note_exits()
            if self.pid is None:
                return False
            try:
                os.kill(self.pid, signal.SIGINT)
            except ProcessLookupError:
                return False
            return True

    def status(self) -> dict[str, object]:
        with self.lock:
            self._note_exits()
            return {
                "generation": self.generation,
                "started_at": self.started_at,
                "alive": self.pid is not None,
                "pid": self.pid,
                "last_exit": self.last_exit,
                "restarts_on_death": self.restarts_on_death,
            }


def other_pids() -> list[int]:
    """Every process in the sandbox but the agent itself (zombies included)."""
    me = os.getpid()
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) != me]


def describe_processes(kernel_pid: int | None) -> str:
    """What the sandbox's processes are doing, for the log of a restart the service
    forced: the kernel's state, and where in Linux it waits (``wchan``: where a kernel
    that ignored its interrupts was stuck), and how many other processes are in each
    state (R running, S sleeping, D uninterruptible, Z exited but not reaped)."""
    kernel = "gone"
    others: dict[str, int] = {}
    for pid in other_pids():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue  # gone meanwhile
        if pid != kernel_pid:
            others[state] = others.get(state, 0) + 1
            continue
        try:
            wchan = Path(f"/proc/{pid}/wchan").read_text().strip()
        except OSError:
            wchan = ""
        kernel = f"{state} in {wchan}" if wchan not in ("", "0") else state
    counted = ", ".join(f"{count} {state}" for state, count in sorted(others.items()))
    return f"kernel {kernel}; other processes: {counted or 'none'}"


def end_other_processes(timeout_s: float = 5.0) -> bool:
    """SIGKILL every process in the sandbox but the agent, and wait until the reaper has
    collected them all; False if some remain after ``timeout_s``.

    kill(-1) from PID 1 reaches every other process of the pid namespace at once, so a
    fork bomb cannot outrun it; repeated for whatever was being born meanwhile. Only as
    PID 1: anywhere else it would reach every process of the user on the machine.
    """
    if os.getpid() != 1:
        return True
    deadline = time.monotonic() + timeout_s
    while other_pids():
        signal_others(signal.SIGKILL)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class MemoryGuard:
    """Under gVisor, ends processes when the sandbox as a whole goes over its memory
    limit, as Linux does for a container under runc.

    Under gVisor the agent limits each process's address space (a hog meets a
    MemoryError, and the kernel lives on), but the host's memory limit covers the whole
    sandbox, gVisor included: a sandbox whose processes together cross it is ended
    whole, files and all. A fork bomb's copies took 2.4 to 4.4 GiB here, and once crossed
    the host's 4.5 GiB. gVisor counts its sandbox's memory in its own ``/proc/meminfo``
    (within a few percent of what the host charges), so the agent watches that against
    the limit the host asks for (``SANDBOX_MEMORY_LIMIT``, below the host's). Over it,
    the largest process is ended, as Linux would, when it holds a good share of the
    limit. Otherwise many small processes hold the memory (a fork bomb's copies, which
    go on growing while they are ended one by one), or ending the largest did not bring
    the sandbox back under the limit once it had gone: then every process but the agent
    is ended, and the kernel starts afresh.

    Its thread is started up front, while pids are free, and it needs none to act.
    """

    # How often memory is read: rarely while far from the limit, often when close.
    CHECK_S = 0.2
    CHECK_NEAR_S = 0.02
    NEAR = 0.5  # of the limit
    # The share of the limit the largest process must hold for ending it alone to do.
    # A few large processes growing together share the limit about evenly (four of
    # 1,100 MiB crossed 4,352 MiB with the largest at 1,081 MiB, 24.8 %, in 2 runs of
    # 12), while a fork bomb's copies are each a few percent of it.
    ONE_PROCESS_SHARE = 0.1
    # How long an ended process's memory may take to come back before the next step:
    # at least this, and until the process has gone, for at most ENDED_GONE_S.
    SETTLE_S = 0.1
    ENDED_GONE_S = 1.0
    # After every process was ended: gVisor frees their memory over a second or so,
    # while the fresh kernel starts, which must not count against it.
    RESTART_GRACE_S = 2.0

    def __init__(self, limit_bytes: int, restart_kernel: Callable[[], object]) -> None:
        self.limit_bytes = limit_bytes
        self.restart_kernel = restart_kernel  # ends every other process first
        # The process ended alone, and when, while the sandbox is not yet back under
        # the limit.
        self._ended: tuple[int, float] | None = None
        self._last_used = 0
        self._quiet_until = 0.0

    def used_bytes(self) -> int:
        fields = {}
        # gVisor's own: MemTotal is the host's limit, MemFree what the sandbox has left.
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, value = line.partition(":")
            fields[name] = int(value.split()[0]) * 1024
        return fields["MemTotal"] - fields["MemFree"]

    def check(self) -> float:
        """Act on the memory used now; return how long to wait for the next check."""
        used = self.used_bytes()
        falling = used < self._last_used
        self._last_used = used
        if used <= self.limit_bytes:
            self._ended = None
            return self.CHECK_NEAR_S if used > self.NEAR * self.limit_bytes else self.CHECK_S
        if falling or time.monotonic() < self._quiet_until or self._ended_still_there():
            # What was ended is still being freed (gVisor takes a while): wait for it.
            return self.CHECK_NEAR_S
        # Everything stands still while the agent chooses: reading every process's
        # memory takes a while under load, and a fork bomb grows on meanwhile.
        signal_others(signal.SIGSTOP)
        try:
            victim = None if self._ended else largest_process()
            if victim is None or victim[1] < self.ONE_PROCESS_SHARE * self.limit_bytes:
                # Many processes hold it (a fork bomb's copies: it grows on while they
                # are ended one by one), or ending the largest was not enough.
                largest = "none" if victim is None else f"{victim[1] >> 20} MiB"
                self._report(
                    used, f"ended every process (the largest held {largest}); a fresh kernel starts"
                )
                self.restart_kernel()
                self._ended = None
                self._quiet_until = time.monotonic() + self.RESTART_GRACE_S
                return self.SETTLE_S
            pid, resident = victim
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._report(used, f"ended process {pid} ({resident >> 20} MiB resident)")
            self._ended = (pid, time.monotonic())
            return self.SETTLE_S
        finally:
            # (A process the user had stopped on purpose goes on, too.)
            signal_others(signal.SIGCONT)

    def _ended_still_there(self) -> bool:
        """Whether the process ended last still runs (a SIGKILL is not instant), for at
        most ENDED_GONE_S: its memory is not free until it has exited."""
        if self._ended is None or time.monotonic() > self._ended[1] + self.ENDED_GONE_S:
            return False
        try:
            state = Path(f"/proc/{self._ended[0]}/stat").read_text().rpartition(")")[2]
        except OSError:
            return False  # gone, and reaped
        return state.split()[0] not in ("Z", "X")

    def _report(self, used: int, action: str) -> None:
        print(
            f"agent: the sandbox used {used >> 20} MiB of its {self.limit_bytes >> 20} MiB;"
            f" {action}",
            file=sys.stderr,
            flush=True,
        )

    def run(self) -> None:
        while True:
            try:
                wait = self.check()
            except (OSError, ValueError, KeyError):
                wait = self.CHECK_S
            time.sleep(wait)


def signal_others(signum: int) -> None:
    """Send ``signum`` to every process in the sandbox but the agent (as PID 1 only)."""
    if os.getpid() == 1:
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signum)


def largest_process() -> tuple[int, int] | None:
    """The sandbox's process with the most resident memory but the agent: (pid, bytes)."""
    page = os.sysconf("SC_PAGE_SIZE")
    largest = None
    for pid in other_pids():
        try:
            resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or a zombie
        if largest is None or resident > largest[1]:
            largest = (pid, resident)
    return largest


def reap_forever(supervisor: KernelSupervisor) -> None:
    """As PID 1 we inherit every orphan; collect them all, and tell the supervisor."""
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(0.05)
            continue
        except InterruptedError:
            continue
        supervisor.on_exit(pid, status)


def resolve_data_path(relative: str) -> Path:
    """A path inside /mnt/data, or ValueError: nothing outside it is reachable."""
    relative = unquote(relative).lstrip("/")
    if not relative or "\x00" in relative:
        raise ValueError("empty or invalid path")
    candidate = (DATA_DIR / relative).resolve()
    if candidate != DATA_DIR and DATA_DIR not in candidate.parents:
        raise ValueError("path leaves /mnt/data")
    return candidate


def list_files() -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    for root, dirs, files in os.walk(DATA_DIR):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") and name.endswith(".upload"):
                continue  # an upload still being written (see do_PUT)
            path = Path(root) / name
            try:
                info = path.lstat()
            except OSError:
                continue
            if not path.is_file() or path.is_symlink():
                continue
            entries.append(
                {
                    "path": "/" + str(path.relative_to(DATA_DIR)),
                    "bytes": info.st_size,
                    "mtime": info.st_mtime,
                }
            )
            if len(entries) >= MAX_LISTED_FILES:
                return entries
    return entries


class AgentHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An idle keep-alive connection holds a worker; one whose client vanished gives it
    # back after this long.
    timeout = 60
    supervisor: KernelSupervisor

    def log_message(self, format: str, *args: object) -> None:  # quiet: no log to fill
        pass

    def address_string(self) -> str:
        return "unix"

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _file_path(self) -> Path | None:
        try:
            return resolve_data_path(self.path.removeprefix("/files/"))
        except ValueError as exc:
            self._discard(int(self.headers.get("Content-Length", "0")))
            self._reply(400, {"error": str(exc)})
            return None

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(200, {"kernel": self.supervisor.status()})
        elif self.path == "/files":
            self._reply(200, {"files": list_files()})
        elif self.path.startswith("/files/"):
            path = self._file_path()
            if path is None:
                return
            if not path.is_file():
                self._reply(404, {"error": "no such file"})
                return
            size = path.stat().st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            with path.open("rb") as source:
                shutil.copyfileobj(source, self.wfile, 1 << 16)
        else:
            self._reply(404, {"error": "not found"})

    def do_PUT(self) -> None:
        remaining = int(self.headers.get("Content-Length", "0"))
        if not self.path.startswith("/files/"):
            self._discard(remaining)
            self._reply(404, {"error": "not found"})
            return
        path = self._file_path()
        if path is None:
            return
        partial = path.with_name(f".{path.name}.upload")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with partial.open("wb") as sink:
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 16))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    sink.write(chunk)
            if remaining:
                partial.unlink(missing_ok=True)
                self._reply(400, {"error": "upload ended early"})
                return
            partial.replace(path)
            hand_to_user(path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            self._discard(remaining)
            # ENOSPC when /mnt/data is full: the caller maps it to a clear error.
            self._reply(507 if exc.errno == 28 else 500, {"error": str(exc)})
            return
        self._reply(
            200, {"path": "/" + str(path.relative_to(DATA_DIR)), "bytes": path.stat().st_size}
        )

    def _discard(self, remaining: int) -> None:
        """Read what is left of a request's body before answering it. An answer sent
        with the body unread, and the connection then closed, reaches the client as a
        reset connection, which can lose the answer (a full /mnt/data would read as a
        broken sandbox)."""
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                return
            remaining -= len(chunk)

    def do_DELETE(self) -> None:
        path = self._file_path()
        if path is None:
            return
        if not path.is_file():
            self._reply(404, {"error": "no such file"})
            return
        path.unlink()
        self._reply(200, {"deleted": True})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        if length:
            self.rfile.read(length)
        if self.path.startswith("/agent/ping/"):
            if len(self.server.pings) > 100:  # type: ignore[attr-defined]
                self.server.pings.clear()  # type: ignore[attr-defined]
            self.server.pings.add(self.path.removeprefix("/agent/ping/"))  # type: ignore[attr-defined]
            self._reply(200, {})
        elif self.path == "/kernel/interrupt":
            self._reply(200, {"interrupted": self.supervisor.interrupt()})
        elif self.path == "/kernel/restart":
            generation, ended = self.supervisor.restart()
            self._reply(200, {"generation": generation, "ended": ended})
        else:
            self._reply(404, {"error": "not found"})


class AgentServer(socketserver.UnixStreamServer):
    """Serves connections on a fixed set of threads started up front, and keeps its
    socket's path leading to it.

    A thread per connection would need a free pid for each; code that took every pid
    of the container (a fork bomb) would then leave the service unable to interrupt or
    restart its kernel. The host keeps at most a few connections open (see
    ``interpreter.sandboxes.agent``), fewer than there are workers.

    The socket lies in the run folder, which code in the sandbox can write: it may
    remove it, or put a link or a socket of its own in its place. The agent then listens
    on a fresh socket at the same path, within KEEP_SOCKET_S.
    """

    def __init__(self) -> None:
        super().__init__(str(AGENT_SOCKET), AgentHandler, bind_and_activate=False)
        self._socket_lock = threading.Lock()
        # Nonces that reached this server through its path (see owns_its_path).
        self.pings: set[str] = set()
        self.checkable = False
        self.listen_afresh()

    def owns_its_path(self) -> bool:
        """Whether AGENT_SOCKET leads to this server: a nonce sent through the path
        arrives here. (Not by the file's inode: under gVisor a socket file on the host
        cannot be stat'ed from inside.)"""
        nonce = secrets.token_hex(8)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(2.0)
                probe.connect(str(AGENT_SOCKET))
                probe.sendall(f"POST /agent/ping/{nonce} HTTP/1.1\r\nHost: agent\r\n\r\n".encode())
                probe.recv(1024)
        except OSError:
            return False
        found = nonce in self.pings
        self.pings.discard(nonce)
        return found

    def listen_afresh(self) -> None:
        """Listen on a new socket at AGENT_SOCKET, in place of whatever is there."""
        with self._socket_lock:
            fresh = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            # Workers wake up this often, so that they move on to a replaced socket.
            fresh.settimeout(1.0)
            # Removed, then bound in place: gVisor cannot rename a socket file that
            # lives on the host, so there is no atomic swap.
            try:
                _remove(AGENT_SOCKET)
                fresh.bind(str(AGENT_SOCKET))
                fresh.listen(16)
            except OSError:
                fresh.close()
                raise
            old, self.socket = self.socket, fresh
            old.close()

    def start_workers(self, workers: int) -> None:
        for _ in range(workers):
            threading.Thread(target=self._work, daemon=True).start()
        # Under gVisor a socket that lives on the host cannot be reached from inside, nor
        # removed or replaced by code in the sandbox: there is nothing to check or keep.
        self.checkable = self.owns_its_path()

    def _work(self) -> None:
        while True:
            try:
                request, address = self.get_request()
            except OSError:  # the 1 s time-out, or a socket replaced meanwhile
                continue
            try:
                self.finish_request(request, address)
            except Exception:  # a broken connection must not end the worker
                pass
            finally:
                self.shutdown_request(request)


class RunFolder:
    """The run folder as the agent and the kernel need it, put back before each kernel.

    Code in the sandbox can write this folder: fill it (leaving no room for the kernel's
    sockets), rewrite the connection file (a kernel reading that would answer with
    another key, on other paths), remove or replace the agent's socket. Before a kernel
    starts, none of the user's processes is alive, so nothing can undo this meanwhile.

    Each kernel gets a fresh folder for its sockets: under gVisor a socket file that
    lives on the host can be neither removed nor bound again from inside, but its
    folder can be renamed. The host's sockets reconnect by path, so they find the new
    kernel's; the host removes the stale folders that the agent cannot.
    """

    def __init__(self, server: AgentServer) -> None:
        self.server = server
        # Read once, before any user code has run: as the host wrote it.
        self.connection = CONNECTION_FILE.read_bytes()
        self.sockets = Path(json.loads(self.connection)["ip"]).parent

    def remove_junk(self) -> None:
        for entry in RUN_DIR.iterdir():
            if entry not in (AGENT_SOCKET, CONNECTION_FILE, self.sockets):
                _remove(entry)

    def reset(self) -> None:
        # Under gVisor the folder is root's, and the kernel only passes through it.
        RUN_DIR.chmod(0o700 if os.getuid() == KERNEL_UID else 0o755)
        self.remove_junk()
        if self.sockets != RUN_DIR:
            if self.sockets.exists() or self.sockets.is_symlink():
                stale = RUN_DIR / f"{STALE_PREFIX}{secrets.token_hex(4)}"
                os.rename(self.sockets, stale)
                _remove(stale)
            self.sockets.mkdir()
            os.chown(self.sockets, KERNEL_UID, KERNEL_GID)
        # In place, not renamed over it: gVisor refuses renames in a folder of the host's.
        # No process of the user's is alive now to race with.
        _remove(CONNECTION_FILE)
        CONNECTION_FILE.write_bytes(self.connection)
        if self.server.checkable and not self.server.owns_its_path():
            self.server.listen_afresh()

    def keep_agent_reachable(self) -> None:
        """Take the agent's path back whenever something else is there (runs forever)."""
        while True:
            time.sleep(KEEP_SOCKET_S)
            if not self.server.checkable or self.server.owns_its_path():
                continue
            try:
                self.server.listen_afresh()
            except OSError:
                # A full run folder leaves no room for a socket: make some.
                with contextlib.suppress(OSError):
                    self.remove_junk()
                    self.server.listen_afresh()


def _remove(path: Path) -> None:
    # Unlink first: under gVisor a socket file on the host cannot even be stat'ed.
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:  # a folder
        shutil.rmtree(path, ignore_errors=True)


def kernel_limits() -> dict[int, int]:
    """Limits the host asks for on the kernel and everything it starts (set under
    gVisor, where one process over the host's limits would end the whole sandbox)."""
    limits = {}
    for variable, resource_id in (
        ("SANDBOX_PROCESS_LIMIT", resource.RLIMIT_NPROC),
        ("SANDBOX_ADDRESS_SPACE_LIMIT", resource.RLIMIT_AS),
    ):
        if os.environ.get(variable, "").isdigit():
            limits[resource_id] = int(os.environ[variable])
    return limits


def become_kernel() -> None:
    """The kernel's first moment (``agent.py kernel``): take its limits, become the
    sandbox user, then be ipykernel. Limits set here, before any user code, are inherited
    by everything the kernel starts."""
    for resource_id, limit in kernel_limits().items():
        resource.setrlimit(resource_id, (limit, limit))
    if os.getuid() != KERNEL_UID:
        os.setgroups([])
        os.setgid(KERNEL_GID)
        os.setuid(KERNEL_UID)
    os.execv(sys.executable, KERNEL_COMMAND)


def hand_to_user(path: Path) -> None:
    """Give what the agent made in /mnt/data, and the folders it made for it, to the
    sandbox user (when the agent runs as root, under gVisor)."""
    if os.getuid() == KERNEL_UID:
        return
    while path != DATA_DIR and DATA_DIR in path.parents:
        os.chown(path, KERNEL_UID, KERNEL_GID, follow_symlinks=False)
        path = path.parent


def main() -> None:
    # The host writes the connection file before starting the container.
    if not CONNECTION_FILE.exists():
        sys.exit(f"agent: {CONNECTION_FILE} is missing")
    for signum in IGNORED_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    server = AgentServer()
    run_folder = RunFolder(server)
    supervisor = KernelSupervisor(before_kernel=run_folder.reset)
    AgentHandler.supervisor = supervisor
    # Serving before the first kernel: the run folder's reset asks the agent's own path.
    server.start_workers(AGENT_WORKERS)
    threading.Thread(target=reap_forever, args=(supervisor,), daemon=True).start()
    if os.environ.get("SANDBOX_MEMORY_LIMIT", "").isdigit():
        guard = MemoryGuard(int(os.environ["SANDBOX_MEMORY_LIMIT"]), supervisor.restart)
        threading.Thread(target=guard.run, daemon=True).start()
    supervisor.start()
    run_folder.keep_agent_reachable()


if __name__ == "__main__":
    if sys.argv[1:] == ["kernel"]:
        become_kernel()
    else:
        main()
