"""The sandbox agent: PID 1 of every sandbox container.

It keeps one ipykernel running (restarting it when it dies, so that files in /mnt/data
outlive an out-of-memory kill), reaps orphaned processes as an init must, and answers a
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
import shutil
import signal
import socketserver
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote

RUN_DIR = Path(os.environ.get("SANDBOX_RUN_DIR", "/run/sandbox"))
DATA_DIR = Path(os.environ.get("SANDBOX_DATA_DIR", "/mnt/data"))
CONNECTION_FILE = RUN_DIR / "kernel.json"
AGENT_SOCKET = RUN_DIR / "agent.sock"
MAX_LISTED_FILES = 10_000
AGENT_WORKERS = 8


class KernelSupervisor:
    """Starts the kernel, notices its death through the reaper, and starts it again.

    Starting a kernel needs a free pid. Code that took every pid of the container (a
    fork bomb) may leave none for a moment, so a kernel that could not be started is
    retried by a keeper thread until one is, rather than failing for good.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.process: subprocess.Popen[bytes] | None = None
        self.generation = 0
        self.started_at = 0.0
        self.last_exit: int | None = None
        self.restarts_on_death = 0
        self.stopping = False
        self._wanted = threading.Event()

    def start(self) -> None:
        with self.lock:
            self._spawn()
        # Started now, while pids are free: later there may be none for a new thread.
        threading.Thread(target=self._keep_alive, daemon=True).start()

    def _spawn(self) -> None:
        # Wall-clock time is shared with the host, so it can tell whether the kernel
        # it is waiting on was replaced before or after its request was sent.
        started_at = time.time()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ipykernel_launcher",
                "-f",
                str(CONNECTION_FILE),
                "--IPKernelApp.exec_lines=__import__('sandbox_startup').run()",
                "--HistoryManager.enabled=False",
            ],
            cwd=DATA_DIR,
            env={**os.environ, "SANDBOX_KERNEL_GENERATION": str(self.generation + 1)},
            stdin=subprocess.DEVNULL,
            # A new session, so a stray os.killpg from user code cannot reach the agent.
            start_new_session=True,
        )
        self.generation += 1
        self.started_at = started_at

    def _try_spawn(self) -> None:
        """Start a kernel now if possible, else leave it to the keeper (lock held)."""
        try:
            self._spawn()
        except OSError:
            self.process = None
            self._wanted.set()

    def _keep_alive(self) -> None:
        while True:
            self._wanted.wait(0.2)
            with self.lock:
                self._wanted.clear()
                if self.process is None and not self.stopping:
                    self._try_spawn()

    def on_exit(self, pid: int, status: int) -> None:
        """Called by the reaper for every child that exits."""
        with self.lock:
            if self.process is None or pid != self.process.pid:
                return
            self.last_exit = os.waitstatus_to_exitcode(status)
            # Popen must not try to reap a pid the reaper already collected.
            self.process.returncode = self.last_exit
            if self.stopping:
                return
            self.restarts_on_death += 1
            self._try_spawn()

    def restart(self) -> int:
        """Kill the kernel (its whole process group) and start a fresh one."""
        with self.lock:
            old = self.process
            if old is not None and old.returncode is None:
                _kill_group(old.pid)
            # Its exit is ignored in on_exit: it is replaced here.
            self.process = None
            self._try_spawn()
            return self.generation + (1 if self.process is None else 0)

    def interrupt(self) -> bool:
        with self.lock:
            if self.process is None or self.process.returncode is not None:
                return False
            try:
                os.kill(self.process.pid, signal.SIGINT)
            except ProcessLookupError:
                return False
            return True

    def status(self) -> dict[str, object]:
        with self.lock:
            alive = self.process is not None and self.process.returncode is None
            return {
                "generation": self.generation,
                "started_at": self.started_at,
                "alive": alive,
                "pid": self.process.pid if self.process else None,
                "last_exit": self.last_exit,
                "restarts_on_death": self.restarts_on_death,
            }


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


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
        if not self.path.startswith("/files/"):
            self._reply(404, {"error": "not found"})
            return
        path = self._file_path()
        if path is None:
            return
        remaining = int(self.headers.get("Content-Length", "0"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.upload")
            with partial.open("wb") as sink:
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 16))
                    if not chunk:
                        break
                    sink.write(chunk)
                    remaining -= len(chunk)
            if remaining:
                partial.unlink(missing_ok=True)
                self._reply(400, {"error": "upload ended early"})
                return
            partial.replace(path)
        except OSError as exc:
            # ENOSPC when /mnt/data is full: the caller maps it to a clear error.
            self._reply(507 if exc.errno == 28 else 500, {"error": str(exc)})
            return
        self._reply(
            200, {"path": "/" + str(path.relative_to(DATA_DIR)), "bytes": path.stat().st_size}
        )

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
        if self.path == "/kernel/interrupt":
            self._reply(200, {"interrupted": self.supervisor.interrupt()})
        elif self.path == "/kernel/restart":
            self._reply(200, {"generation": self.supervisor.restart()})
        else:
            self._reply(404, {"error": "not found"})


class AgentServer(socketserver.UnixStreamServer):
    """Serves connections on a fixed set of threads started up front.

    A thread per connection would need a free pid for each; code that took every pid
    of the container (a fork bomb) would then leave the service unable to interrupt or
    restart its kernel. The host keeps at most a few connections open (see
    ``interpreter.sandboxes.agent``), fewer than there are workers.
    """

    def serve_with_workers(self, workers: int) -> None:
        for _ in range(workers - 1):
            threading.Thread(target=self._work, daemon=True).start()
        self._work()

    def _work(self) -> None:
        while True:
            try:
                request, address = self.get_request()
            except OSError:
                continue
            try:
                self.finish_request(request, address)
            except Exception:  # a broken connection must not end the worker
                pass
            finally:
                self.shutdown_request(request)


def main() -> None:
    supervisor = KernelSupervisor()
    # The host writes the connection file before starting the container.
    if not CONNECTION_FILE.exists():
        sys.exit(f"agent: {CONNECTION_FILE} is missing")
    threading.Thread(target=reap_forever, args=(supervisor,), daemon=True).start()
    supervisor.start()

    AGENT_SOCKET.unlink(missing_ok=True)
    AgentHandler.supervisor = supervisor
    server = AgentServer(str(AGENT_SOCKET), AgentHandler)

    def stop(signum: int, frame: object) -> None:
        supervisor.stopping = True
        if supervisor.process is not None:
            _kill_group(supervisor.process.pid)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server.serve_with_workers(AGENT_WORKERS)


if __name__ == "__main__":
    main()
