"""``RunnerProcess``: a local model served by ``python -m model_runner serve`` in a child
process, reached over a unix socket in a folder only this user can enter.

Why a process of its own: between its torch operations the model's thread runs Python,
and inside the service it takes turns with the event loop on the interpreter's global
lock, so one core bounds the API and the model together (docs/benchmarks.md). Apart,
they run on two cores; a crash of the model (a segfault, the kernel's OOM killer) does
not take the API with it; and the service's process never imports torch.

- ``start`` launches the child and waits until it answers (then probes it as any served
  runner: name, batch, temperature, context). A child that gives up raises its own
  start-up error (``ModelNotFound``, ...), which it writes to a socket pair it shares
  with this process.
- The child stops when its end of that pair closes: when this process ends, SIGKILL
  included, no model is left running.
- A child that exits while the service runs is started again on the same socket, after
  1 s, then 2, 4, ... up to a minute while it keeps failing. Generations in flight fail
  with ``ModelUnavailable``, and so do new ones, saying why, until it answers again.
- ``aclose`` stops it: SIGTERM, then SIGKILL after ``STOP_GRACE_S``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from model_runner.engines.runner import RunnerGenerator
from model_runner.errors import ERRORS_BY_CODE, ModelRunnerError, ModelUnavailable
from model_runner.generator import GenerationRequest, GenerationStream, GenerationUsage

log = logging.getLogger(__name__)

#: How long a stopped child gets to end its generations before SIGKILL.
STOP_GRACE_S = 10.0
#: A model of 20B parameters can take minutes to load from disk.
DEFAULT_START_TIMEOUT_S = 900.0
#: Waits between restarts of a child that keeps exiting: doubled up to the maximum.
RESTART_DELAY_S = 1.0
RESTART_DELAY_MAX_S = 60.0
#: The URL the runner is addressed by; the socket decides where requests go.
BASE_URL = "http://model-runner"
#: The folder holding ``model_runner``.
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


class RunnerProcess:
    """A ``Generator`` whose model runs in a child process of this one."""

    def __init__(self, spec: str, serve_args: list[str], start_timeout_s: float) -> None:
        self.spec = spec
        self.start_timeout_s = start_timeout_s
        self._serve_args = serve_args
        self._folder = Path(tempfile.mkdtemp(prefix="model-runner-"))
        self.socket_path = str(self._folder / "runner.sock")
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._runner: RunnerGenerator | None = None
        self._closing = threading.Event()
        self._watcher: threading.Thread | None = None
        #: Why generations cannot be served now; None while the child answers.
        self.down_reason: str | None = None
        self.restarts = 0

    @classmethod
    def start(
        cls,
        spec: str,
        *,
        threads: int = 0,
        max_batch: int = 0,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> RunnerProcess:
        """Launch the child for ``spec`` (demo, a folder, a hub id, random:...) and wait
        until it serves. Blocks while the model loads: call it at start-up or in a thread.
        Raises the child's start-up error, or ``ModelUnavailable``."""
        serve_args = []
        if threads:
            serve_args += ["--threads", str(threads)]
        if max_batch:
            serve_args += ["--max-batch", str(max_batch)]
        runner = cls(spec, serve_args, start_timeout_s)
        try:
            runner._launch()
            runner._runner = RunnerGenerator.connect(BASE_URL, uds=runner.socket_path)
        except BaseException:
            runner._closing.set()
            runner._stop_child()
            shutil.rmtree(runner._folder, ignore_errors=True)
            raise
        runner._watcher = threading.Thread(target=runner._watch, name="model-process")
        runner._watcher.daemon = True
        runner._watcher.start()
        return runner

    # -- the Generator protocol -----------------------------------------------------------

    @property
    def name(self) -> str:
        return self._connected.name

    @property
    def concurrency(self) -> int:
        return self._connected.concurrency

    @property
    def default_temperature(self) -> float:
        return self._connected.default_temperature

    @property
    def max_context(self) -> int | None:
        return self._connected.max_context

    @property
    def pid(self) -> int | None:
        """The child's, while it runs."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    def generate(self, request: GenerationRequest) -> GenerationStream:
        reason = self.down_reason
        if reason is not None:
            usage = GenerationUsage(prompt_tokens=len(request.prompt_tokens))
            return GenerationStream(_failing(ModelUnavailable(reason)), usage)
        return self._connected.generate(request)

    def process_status(self) -> dict[str, Any]:
        """The child's pid, how often it was started again, and why it does not serve
        now (None while it does)."""
        return {"pid": self.pid, "restarts": self.restarts, "down_reason": self.down_reason}

    async def health(self) -> dict[str, Any]:
        return await self._connected.health()

    async def aclose(self) -> None:
        self._closing.set()
        await asyncio.to_thread(self._stop_child)
        if self._watcher is not None:
            await asyncio.to_thread(self._watcher.join, STOP_GRACE_S + 5)
        # A restart may have been under way: stop whatever child there is now.
        await asyncio.to_thread(self._stop_child)
        await self._connected.aclose()
        shutil.rmtree(self._folder, ignore_errors=True)

    @property
    def _connected(self) -> RunnerGenerator:
        assert self._runner is not None, "RunnerProcess.start() connects it"
        return self._runner

    # -- the child ------------------------------------------------------------------------

    def _launch(self) -> None:
        """Start a child and wait until it answers on the socket."""
        ours, theirs = socket.socketpair()
        command = [
            sys.executable, "-m", "model_runner", "serve", "--model", self.spec,
            "--uds", self.socket_path, "--control-fd", str(theirs.fileno()),
            "--log-level", "warning", *self._serve_args,
        ]  # fmt: skip
        # The package this module is in, importable wherever the service was started.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p
        )
        try:
            # A session of its own: a terminal's Ctrl-C reaches the service, which then
            # stops the child itself, rather than both at once (and a restart between).
            process = subprocess.Popen(
                command,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        if self._control is not None:  # the previous child's
            self._control.close()
        self._process, self._control = process, ours
        log.info("model process %d started for %s", process.pid, self.spec)
        deadline = time.monotonic() + self.start_timeout_s
        while not self._answers():
            if self._closing.is_set():
                raise ModelUnavailable("the service is stopping")
            # A start-up error arrives before the child exits: do not wait for the exit.
            if process.poll() is not None or select.select([ours], [], [], 0)[0]:
                raise self._start_error(process)
            if time.monotonic() > deadline:
                self._stop_child()
                raise ModelUnavailable(
                    f"the model process did not answer within {self.start_timeout_s:g} s"
                )
            time.sleep(0.1)

    def _answers(self) -> bool:
        # Connect by hand first: httpx leaves a socket open when a unix connect fails.
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(5)
                probe.connect(self.socket_path)
        except OSError:
            return False
        transport = httpx.HTTPTransport(uds=self.socket_path)
        try:
            with httpx.Client(base_url=BASE_URL, transport=transport, timeout=5) as client:
                return client.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def _start_error(self, process: subprocess.Popen[bytes]) -> ModelRunnerError:
        """The error a child that gave up wrote (the child is then stopped), or one
        saying that it exited."""
        assert self._control is not None
        self._control.settimeout(1.0)
        try:
            with self._control.makefile("rb") as lines:
                line = lines.readline()
            body = json.loads(line) if line else None
        except (OSError, ValueError):
            body = None
        self._stop_child()
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return ERRORS_BY_CODE.get(body.get("code", ""), ModelRunnerError)(body["message"])
        return ModelUnavailable(
            f"the model process for {self.spec} exited with code {process.returncode} while "
            "starting (its log is in the service's)"
        )

    def _stop_child(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                log.warning("model process %d ignored SIGTERM: killing it", process.pid)
                process.kill()
                process.wait()
        if self._control is not None:
            self._control.close()

    def _watch(self) -> None:
        """Start the child again whenever it exits, until the service stops."""
        delay = RESTART_DELAY_S
        serving_since = time.monotonic()
        while not self._closing.is_set():
            process = self._process
            assert process is not None
            code = process.wait()
            if self._closing.is_set():
                return
            exited = f"the model process exited with code {code}"
            self.down_reason = f"{exited}; it is being started again"
            log.error("model process %d exited with code %d", process.pid, code)
            # One that served a while before it exited starts the waits afresh.
            if time.monotonic() - serving_since > RESTART_DELAY_MAX_S:
                delay = RESTART_DELAY_S
            # Waited before the first try too: a service being stopped (systemd signals
            # the whole group at once) has the time to say so, and is not restarted.
            while not self._closing.wait(delay):
                delay = min(delay * 2, RESTART_DELAY_MAX_S)
                log.info("starting the model process again")
                try:
                    self._launch()
                except Exception as exc:  # whatever it is, the watcher lives on
                    if self._closing.is_set():
                        return
                    log.error("model process did not start again: %s", exc)
                    self.down_reason = (
                        f"{exited}; starting it again failed ({exc}); it is tried again"
                    )
                    continue
                serving_since = time.monotonic()
                self.restarts += 1
                self.down_reason = None
                log.info("model process %s serves again", self.pid)
                break

    def begin_shutdown(self) -> None:
        """The service is stopping: a child that exits now is not started again."""
        self._closing.set()


async def _failing(error: ModelRunnerError) -> AsyncIterator[int]:
    raise error
    yield  # an async generator: the error surfaces when iterated, as every Generator's
