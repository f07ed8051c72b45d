"""``python -m interpreter serve`` as a separate process, for benchmarks that drive it
over HTTP as a client would (the client's work then never competes with the service's
event loop)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RunningService:
    base: str
    data_dir: Path
    run_root: Path
    pid: int


@contextmanager
def service(root: Path, service_name: str, **settings: str) -> Iterator[tuple[str, Path]]:
    """The service in the background, its state under ``root``; ``settings`` become
    ``INTERPRETER_*`` variables (the model defaults to none). Yields (base URL, data
    folder); the service ends its sessions when it stops."""
    with running_service(root, service_name, **settings) as running:
        yield running.base, running.data_dir


@contextmanager
def running_service(root: Path, service_name: str, **settings: str) -> Iterator[RunningService]:
    """``service``, yielding its process id and folders too."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERPRETER_")}
    env.update(
        INTERPRETER_SERVICE_NAME=service_name,
        INTERPRETER_DATA_DIR=str(root / "data"),
        INTERPRETER_RUN_ROOT=str(root / "run"),
        INTERPRETER_MODEL="none",
    )
    env.update({f"INTERPRETER_{k.upper()}": v for k, v in settings.items()})
    root.mkdir(parents=True, exist_ok=True)
    log = (root / "service.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "interpreter", "serve", "--port", str(port), "--cleanup-on-exit"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start; see {root / 'service.log'}")
            time.sleep(0.1)
        yield RunningService(base, root / "data", root / "run", process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
