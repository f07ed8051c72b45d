"""The service as a real process (``python -m interpreter serve`` or ``make run``), for
tests that kill it, restart it, or check how it starts and stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import REPO, free_port


class ServiceProcess:
    """One service process in its own process group, with its own data and run folders."""

    def __init__(self, command: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.command = command
        self.env = env
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def serve(cls, root: Path, service_name: str, *extra: str, **settings: str) -> ServiceProcess:
        port = free_port()
        env = service_env(root, service_name, **settings)
        command = [sys.executable, "-m", "interpreter", "serve", "--port", str(port), *extra]
        return cls(command, env, port, root / f"serve-{port}.log")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_healthy(self, timeout_s: float = 120.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the service exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the service did not answer: {self.log.read_text()[-3000:]}")

    def signal(self, signum: int, timeout_s: float = 60.0) -> int:
        """Send ``signum`` to the whole process group and wait for the service to end."""
        assert self.process is not None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signum)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGKILL)


def service_env(root: Path, service_name: str, **settings: str) -> dict[str, str]:
    """Environment for a service that keeps everything under ``root``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERPRETER_")}
    env.update(
        INTERPRETER_SERVICE_NAME=service_name,
        INTERPRETER_DATA_DIR=str(root / "data"),
        INTERPRETER_RUN_ROOT=str(root / "run"),
        INTERPRETER_MODEL="none",
        INTERPRETER_PREIMPORT="",
        INTERPRETER_POOL_SIZE="1",
    )
    env.update({f"INTERPRETER_{k.upper()}": v for k, v in settings.items()})
    return env
