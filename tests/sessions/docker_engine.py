"""The machine's Docker engine, stopped and started again as its operator would (there is
no systemctl here): the running ``dockerd`` is found in /proc and started again with the
same command line, environment, working folder and log. Tests that use it stop the
engine every other test run on this machine uses, so they keep it down briefly."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

STOP_TIMEOUT_S = 60.0
START_TIMEOUT_S = 60.0
SHUTDOWN_COMPLETE = "Daemon shutdown complete"
# How long dockerd may take to exit on its own once its shutdown is complete.
LINGER_S = 1.0


@dataclass(frozen=True)
class DockerDaemon:
    pid: int
    argv: list[str]
    env: dict[str, str]
    cwd: str
    log: str | None  # where its output went, if a file

    @classmethod
    def running(cls) -> DockerDaemon:
        """The one dockerd of this machine."""
        found = [
            int(entry.name)
            for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and _read(entry / "comm").strip() == "dockerd"
        ]
        assert len(found) == 1, f"expected one dockerd running, found {found}"
        proc = Path(f"/proc/{found[0]}")
        argv = _read(proc / "cmdline").rstrip("\0").split("\0")
        env = dict(
            item.split("=", 1) for item in _read(proc / "environ").split("\0") if "=" in item
        )
        log = os.readlink(proc / "fd" / "1")
        return cls(
            found[0], argv, env, os.readlink(proc / "cwd"), log if log.startswith("/") else None
        )

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it: it stops its containers and says
        "Daemon shutdown complete". Then dockerd 20.10 lingers for half a minute
        (waiting on its containerd) before it exits, and a new one cannot start until it
        has: once its log says it is done, it is killed, to keep the engine down briefly.
        (Some exits still take that long: the process is already on its way out.)"""
        logged = Path(self.log).stat().st_size if self.log else 0
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self._alive():
            assert time.monotonic() < deadline, "dockerd did not stop"
            if self.log and SHUTDOWN_COMPLETE in _tail(Path(self.log), logged):
                time.sleep(LINGER_S)
                if self._alive():
                    os.kill(self.pid, signal.SIGKILL)
            time.sleep(0.05)

    def _alive(self) -> bool:
        stat = _read(Path(f"/proc/{self.pid}/stat")).split()
        return bool(stat) and stat[2] != "Z"

    def start(self) -> None:
        """The same dockerd again, not a child of this process (``setsid --fork``: it
        outlives the test run, as the first one did); returns once it answers."""
        with contextlib.ExitStack() as stack:
            output = stack.enter_context(open(self.log, "ab")) if self.log else subprocess.DEVNULL
            subprocess.run(
                ["setsid", "--fork", *self.argv],
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                check=True,
            )
        wait_for_engine(START_TIMEOUT_S)


def wait_for_engine(timeout_s: float) -> None:
    """Return once the engine answers its ping. Its socket is tried first with a socket
    of our own: the Docker SDK and httpx both leave the socket of a refused connection
    open, for the collector to find (an error under pytest)."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    path = urlsplit(host).path
    deadline = time.monotonic() + timeout_s
    while not _accepts(path):
        if time.monotonic() > deadline:
            raise AssertionError(f"the Docker engine did not listen in {timeout_s:g} s")
        time.sleep(0.1)
    transport = httpx.HTTPTransport(uds=path)
    with httpx.Client(transport=transport, base_url="http://docker", timeout=30) as engine:
        assert engine.get("/_ping").text == "OK"


def _accepts(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


@contextlib.contextmanager
def engine_stopped() -> Iterator[DockerDaemon]:
    """The engine stopped for the body of the ``with``, and started again afterwards,
    whatever happened in it."""
    daemon = DockerDaemon.running()
    try:
        daemon.stop()
        yield daemon
    finally:
        daemon.start()


def _tail(path: Path, offset: int) -> str:
    with path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
