"""A live sandbox: its kernel and its agent, and the execution loop over both."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interpreter.errors import KernelBusy, SandboxError
from interpreter.sandboxes import introspection
from interpreter.sandboxes.agent import AgentClient
from interpreter.sandboxes.base import SandboxRecord
from interpreter.sandboxes.introspection import Completion, Inspection, Namespace
from interpreter.sandboxes.kernel import KernelConnection
from interpreter.sandboxes.outputs import (
    ClearOutput,
    DisplayOutput,
    ErrorOutput,
    ExecutionResult,
    Output,
    StreamOutput,
)

log = logging.getLogger(__name__)

OutputCallback = Callable[[Output], Awaitable[None]]

# How long to wait for the kernel to begin an execution that is to be interrupted: it is
# idle (executions are serialised), so only a kernel that is stuck takes this long.
START_GRACE_S = 10.0
# How long to wait for the kernel to come back from an interrupt before restarting it
# (which loses its variables), by runtime. gVisor traps every system call of the
# kernel's reply (its round trip is about three times runc's), and on a machine slowed
# to about half its speed an interrupted endless loop under runsc was not back in 3 s:
# it lost its state in a full-suite run. The grace only delays the restart of a kernel
# that ignores interrupts.
INTERRUPT_GRACE_S = {"runc": 3.0, "runsc": 10.0}
# ... interrupting it again this often meanwhile.
INTERRUPT_REPEAT_S = 0.5
# How often an execution the kernel aborted unrun (see Sandbox.execute) is sent again.
ABORTED_RETRIES = 2
# Without messages for this long during an execution, ask the agent whether the kernel lives.
LIVENESS_POLL_S = 0.5
# How long a liveness check waits for the agent before the execution goes on waiting.
LIVENESS_ANSWER_S = 5.0
# How long a live sandbox's agent may take to say it is there (it answers in a
# millisecond; a dead sandbox's socket refuses at once).
PROBE_TIMEOUT_S = 3.0

# What the run folder holds for the host: the agent's socket, the connection file, the
# kernel's sockets (in their folder; or, for a sandbox made before there was one, beside
# them). Anything else there is the sandbox's junk or a stale socket folder of an
# earlier kernel, which the agent could not remove under gVisor.
RUN_FOLDER_ENTRIES = frozenset({"agent.sock", "kernel.json", "sockets"})

TRUNCATION_MARKER = "\n[output truncated: the execution printed more than the limit]\n"

STATE_LOST_NOTICE = (
    "The Python kernel was restarted before this ran: variables from earlier executions "
    "are gone. Files in /mnt/data were kept."
)


@dataclass
class Progress:
    """How far one execute request has got: whether the kernel has begun it (it said so
    on iopub), its shell reply, and whether the kernel went idle after it."""

    started: bool = False
    reply: dict[str, Any] | None = None
    idle: bool = False


class OutputCollector:
    """Accumulates outputs under a size cap, merging stream chunks as they come."""

    def __init__(self, max_bytes: int, on_output: OutputCallback | None) -> None:
        self.outputs: list[Output] = []
        self.truncated = False
        self._budget = max_bytes
        self._on_output = on_output

    async def add(self, output: Output) -> None:
        if isinstance(output, ClearOutput):
            self.outputs.clear()
            await self._emit(output)
            return
        if self.truncated:
            return
        size = _size_of(output)
        if size <= self._budget:
            self._budget -= size
            self._append(output)
            await self._emit(output)
            return
        self.truncated = True
        # Keep what fits of a stream chunk: a flood arrives in large batches, and
        # dropping the whole first batch would show nothing of what the code printed.
        if isinstance(output, StreamOutput) and self._budget > 0:
            head = StreamOutput(output.name, output.text[: self._budget])
            self._budget = 0
            self._append(head)
            await self._emit(head)
        marker = StreamOutput("stderr", TRUNCATION_MARKER)
        self._append(marker)
        await self._emit(marker)

    def _append(self, output: Output) -> None:
        last = self.outputs[-1] if self.outputs else None
        if (
            isinstance(output, StreamOutput)
            and isinstance(last, StreamOutput)
            and last.name == output.name
        ):
            self.outputs[-1] = StreamOutput(last.name, last.text + output.text)
        else:
            self.outputs.append(output)

    async def _emit(self, output: Output) -> None:
        if self._on_output is not None:
            await self._on_output(output)


def _size_of(output: Output) -> int:
    if isinstance(output, StreamOutput):
        return len(output.text)
    if isinstance(output, DisplayOutput):
        return sum(len(v) for v in output.data.values())
    if isinstance(output, ErrorOutput):
        return sum(len(line) for line in output.traceback) + len(output.evalue)
    return 0


def _display_data(data: dict[str, Any]) -> dict[str, str]:
    # JSON-valued MIME types (application/json, widgets) are kept as JSON text.
    return {mime: v if isinstance(v, str) else json.dumps(v) for mime, v in data.items()}


class Sandbox:
    """A connected sandbox. One execution at a time: callers serialise (the session does)."""

    def __init__(
        self, record: SandboxRecord, *, max_output_bytes: int, ready_timeout_s: float = 30.0
    ) -> None:
        self.record = record
        self.id = record.id
        self.max_output_bytes = max_output_bytes
        # How long a kernel may take to answer: at start, and after each restart.
        self.ready_timeout_s = ready_timeout_s
        info = json.loads(record.connection_file.read_text())
        self.kernel = KernelConnection(info)
        # The first name under the run folder on the kernel's socket paths.
        sockets = Path(info["ip"])
        self._socket_prefix = (
            sockets.relative_to(record.run_dir).parts[0]
            if record.run_dir in sockets.parents
            else "sockets"
        )
        self.agent = AgentClient(record.run_dir / "agent.sock")
        self._kernel_session: str | None = None
        # A death already reported in a result; the next result only adds the notice.
        self._death_reported = False
        # The kernel session whose completer was set up (see introspection).
        self._completer_session: str | None = None
        # Why the kernel was replaced between executions, when the service did it (an
        # abandoned execution that would not stop); the next result says so.
        self._replaced_because: str | None = None

    async def connect(self) -> None:
        """Open the sockets and wait until the kernel answers on every channel."""
        self.kernel.open()
        await self._wait_ready(self.ready_timeout_s)
        self._kernel_session = self.kernel.kernel_session

    async def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        await asyncio.to_thread(_tidy_run_folder, self.record.run_dir, self._socket_prefix)
        # The agent's socket appears a moment after the container starts.
        while not (self.record.run_dir / "agent.sock").exists():
            if time.monotonic() > deadline:
                raise SandboxError("the sandbox agent did not start")
            await asyncio.sleep(0.01)
        try:
            await self.kernel.wait_ready(max(0.1, deadline - time.monotonic()))
        except TimeoutError as exc:
            raise SandboxError(f"the kernel of sandbox {self.id} did not become ready") from exc

    async def execute(
        self,
        code: str,
        *,
        timeout_s: float,
        on_output: OutputCallback | None = None,
    ) -> ExecutionResult:
        """Run ``code`` and collect its outputs; ``on_output`` sees each as it arrives.

        On time-out the kernel is interrupted (state kept); if it does not stop within a
        grace period it is restarted. If the kernel dies, the agent has already started a
        new one; the result says so.
        """
        started = time.monotonic()
        collector = OutputCollector(self.max_output_bytes, on_output)
        for _ in range(ABORTED_RETRIES + 1):
            outcome, timed_out, restarted = await self._run(code, collector, started + timeout_s)
            # "aborted": the kernel refused the request unrun, because it came while an
            # earlier execution was failing (stop_on_error). Running it again is safe.
            if timed_out or not isinstance(outcome, tuple) or outcome[0] != "aborted":
                break
            log.info("the kernel of %s aborted an execution; sending it again", self.id)
        result = ExecutionResult(
            status="ok",
            outputs=collector.outputs,
            truncated=collector.truncated,
            duration_s=time.monotonic() - started,
        )
        if outcome == "died":
            result.status = "died"
            result.kernel_restarted = True
            result.restart_reason = "died"
            self._death_reported = True
            error = ErrorOutput(
                "KernelDied",
                "The Python kernel died while running this code (most likely it ran out of "
                "memory) and was restarted: variables are gone, files in /mnt/data were kept.",
                [],
            )
            await collector.add(error)
            log.info("the kernel of %s died and was restarted", self.id)
            # The agent has started a new kernel; wait for it, but leave the remembered
            # kernel session as it was, so the next result also says what was lost.
            await self._wait_ready(self.ready_timeout_s)
            return result
        if timed_out:
            result.status = "timeout"
            if restarted:
                result.kernel_restarted = True
                result.notice = STATE_LOST_NOTICE
                result.restart_reason = "timeout"
            return result
        assert isinstance(outcome, tuple)
        reply_status, count = outcome
        result.execution_count = count
        result.status = "ok" if reply_status == "ok" else "error"
        if reply_status == "aborted":
            await collector.add(
                ErrorOutput(
                    "ExecutionAborted", "The kernel did not run this code; run it again.", []
                )
            )
        # A new kernel session means this ran in a fresh kernel: say what was lost.
        session = self.kernel.kernel_session
        if self._kernel_session is not None and session != self._kernel_session:
            result.kernel_restarted = True
            result.notice = STATE_LOST_NOTICE
            # Unless an earlier result said why, the kernel died while idle.
            if not self._death_reported:
                result.restart_reason = self._replaced_because or "died"
        self._death_reported = False
        self._replaced_because = None
        self._kernel_session = session
        return result

    async def _run(
        self, code: str, collector: OutputCollector, deadline: float
    ) -> tuple[tuple[str, int | None] | str, bool, bool]:
        """Send one execute_request and see it through: (outcome, timed_out, restarted)."""
        msg = self.kernel.message(
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
        )
        timed_out = restarted = False
        seen = Progress()
        with self.kernel.route(msg) as queue:
            sent_at = time.time()
            self.kernel.post("shell", msg)
            try:
                outcome = await self._collect(queue, collector, deadline, sent_at, seen)
                if outcome == "timeout":
                    timed_out = True
                    outcome = await self._interrupt_until_stopped(queue, collector, sent_at, seen)
                    if outcome == "timeout":
                        await self._restart_kernel("did not stop when interrupted")
                        self._kernel_session = self.kernel.kernel_session
                        restarted = True
            except asyncio.CancelledError:
                # The caller went away: stop the code but keep the kernel's state, and
                # hold on (the session's lock with us, the route open) until the kernel
                # has really stopped: a request sent before then would be aborted by the
                # kernel. Cancelled again meanwhile (clean-up code often cancels twice),
                # keep waiting; the stop is bounded by its own time-outs.
                stopping = asyncio.ensure_future(self._stop_abandoned(queue, sent_at, seen))
                while not stopping.done():
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.shield(stopping)
                raise
        return outcome, timed_out, restarted

    async def _interrupt_until_stopped(
        self,
        queue: asyncio.Queue[tuple[str, dict[str, Any]]],
        collector: OutputCollector,
        sent_at: float,
        seen: Progress,
    ) -> tuple[str, int | None] | str:
        """Interrupt until the execution ends, for up to the runtime's INTERRUPT_GRACE_S; then
        'timeout'.

        An interrupt stops only the user's code: inside the kernel, one that lands
        before or after it is dropped (see sandbox_image/cell_boundaries.py; before that
        rule, one that landed in ipykernel's own code lost the reply, and so the state).
        So interrupts are sent once the kernel has said it began this request, and
        repeated, since the code may not have been reached yet when one lands.
        """
        if not seen.started:
            start_deadline = time.monotonic() + START_GRACE_S
            outcome = await self._collect(
                queue, collector, start_deadline, sent_at, seen, until_started=True
            )
            if outcome != "started":
                return outcome
        deadline = time.monotonic() + INTERRUPT_GRACE_S.get(
            self.record.runtime, INTERRUPT_GRACE_S["runc"]
        )
        while True:
            await self.agent.interrupt()
            attempt_end = min(deadline, time.monotonic() + INTERRUPT_REPEAT_S)
            outcome = await self._collect(queue, collector, attempt_end, sent_at, seen)
            if outcome != "timeout" or time.monotonic() >= deadline:
                return outcome

    async def _stop_abandoned(
        self, queue: asyncio.Queue[tuple[str, dict[str, Any]]], sent_at: float, seen: Progress
    ) -> None:
        try:
            discard = OutputCollector(0, None)
            outcome = await self._interrupt_until_stopped(queue, discard, sent_at, seen)
            if outcome == "timeout":
                # The session stays as it was, so the next result says the state is gone.
                await self._restart_kernel("did not stop when interrupted (abandoned)")
                self._replaced_because = "timeout"
        except (SandboxError, OSError) as exc:
            log.warning("could not stop an abandoned execution in %s: %s", self.id, exc)

    async def _died_since(self, sent_at: float) -> bool:
        """Whether the kernel died after ``sent_at`` (wall clock). A kernel that was replaced
        earlier, while idle, received the request itself and is still working on it.

        An agent that is slow to answer (starved by the code it watches: a fork bomb
        under gVisor on a busy machine took more than 30 s) is not known to be dead: the
        execution's own deadline decides. One that is gone fails at once."""
        try:
            async with asyncio.timeout(LIVENESS_ANSWER_S):
                status = await self.agent.health()
        except TimeoutError:
            log.info("the agent of %s is slow to answer; the execution goes on", self.id)
            return False
        return not status.alive or status.started_at > sent_at

    async def _collect(
        self,
        queue: asyncio.Queue[tuple[str, dict[str, Any]]],
        collector: OutputCollector,
        deadline: float,
        sent_at: float,
        seen: Progress,
        *,
        until_started: bool = False,
    ) -> tuple[str, int | None] | str:
        """Read messages until the execution ends; return (status, count), 'timeout' or
        'died'; with ``until_started``, 'started' as soon as the kernel has begun it.

        What was seen is kept in ``seen``, so that a later call for the same request
        (after an interrupt) still knows of a reply that came before a deadline."""
        while seen.reply is None or not seen.idle:
            if until_started and seen.started:
                return "started"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            # The reply came, and nothing on iopub for this request: after a kernel
            # restart the iopub socket may still be reconnecting, and the idle status
            # may never come. Once iopub has said anything for it, it will come, after
            # all the outputs (a large one may take a while to arrive after the reply).
            iopub_lost = seen.reply is not None and not seen.started
            if iopub_lost:
                remaining = min(remaining, 0.2)
            try:
                channel, msg = await asyncio.wait_for(queue.get(), min(remaining, LIVENESS_POLL_S))
            except TimeoutError:
                if iopub_lost:
                    break
                if await self._died_since(sent_at):
                    if seen.reply is not None:
                        break  # it died after replying: the reply stands
                    return "died"
                continue
            if channel == "shell":
                seen.reply = msg["content"]
                continue
            msg_type = msg["msg_type"]
            content = msg["content"]
            seen.started = True  # anything on iopub for it: busy comes first
            if msg_type == "status":
                seen.idle = content["execution_state"] == "idle"
            elif msg_type == "stream":
                await collector.add(StreamOutput(content["name"], content["text"]))
            elif msg_type == "execute_result":
                await collector.add(
                    DisplayOutput(_display_data(content["data"]), content["execution_count"])
                )
            elif msg_type in ("display_data", "update_display_data"):
                await collector.add(DisplayOutput(_display_data(content["data"])))
            elif msg_type == "error":
                await collector.add(
                    ErrorOutput(content["ename"], content["evalue"], content["traceback"])
                )
            elif msg_type == "clear_output":
                await collector.add(ClearOutput())
        assert seen.reply is not None
        return (seen.reply["status"], seen.reply.get("execution_count"))

    # -- questions to an idle kernel (callers hold the session, as for execute) ----------

    async def complete(self, code: str, cursor_pos: int) -> Completion:
        if self._completer_session != self.kernel.kernel_session:
            # Once per kernel (a restarted one starts with jedi again).
            await self._ask(
                "execute_request",
                introspection.completer_setup_content(),
                introspection.COMPLETE_TIMEOUT_S,
            )
            self._completer_session = self.kernel.kernel_session
        reply = await self._ask(
            "complete_request",
            introspection.complete_content(code, cursor_pos),
            introspection.COMPLETE_TIMEOUT_S,
        )
        return introspection.parse_completion(reply, code, cursor_pos)

    async def inspect(self, code: str, cursor_pos: int, detail_level: int) -> Inspection:
        reply = await self._ask(
            "inspect_request",
            introspection.inspect_content(code, cursor_pos, detail_level),
            introspection.INSPECT_TIMEOUT_S,
        )
        return introspection.parse_inspection(reply)

    async def variables(self) -> Namespace:
        """The user's variables, from a silent execution that leaves the execution
        count and the namespace as they were."""
        try:
            reply = await self._ask(
                "execute_request",
                introspection.variables_content(),
                introspection.VARIABLES_TIMEOUT_S,
            )
        except KernelBusy:
            # Still describing (a slow property?): stop it, or the next cell would wait.
            await self.agent.interrupt()
            raise
        try:
            return introspection.parse_namespace(reply)
        except introspection.NamespaceUnreadable as exc:
            raise SandboxError(f"the kernel could not list its variables: {exc}") from exc

    async def _ask(
        self, msg_type: str, content: dict[str, Any], timeout_s: float
    ) -> dict[str, Any]:
        try:
            return await self.kernel.request(msg_type, content, timeout_s)
        except TimeoutError as exc:
            raise KernelBusy(f"The kernel did not answer within {timeout_s:g} seconds.") from exc

    async def responds(self, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
        """Whether the sandbox's agent answers: a quick check that its container lives."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.agent.health()
        except (SandboxError, TimeoutError):
            return False
        return True

    async def interrupt(self) -> bool:
        return await self.agent.interrupt()

    async def restart(self) -> None:
        """A fresh kernel in the same container: variables gone, files kept."""
        await self._restart_kernel()
        self._kernel_session = self.kernel.kernel_session

    async def _restart_kernel(self, forced_because: str | None = None) -> None:
        """Restart the kernel; one the service had to replace (``forced_because``) is
        logged with what it was doing, for whoever looks into why."""
        ended = await self.agent.restart()
        if forced_because is not None:
            log.warning("the kernel of %s %s; restarted (%s)", self.id, forced_because, ended)
        await self._wait_ready(self.ready_timeout_s)

    async def close(self) -> None:
        await self.kernel.close()
        await self.agent.close()


def _tidy_run_folder(run_dir: Path, socket_prefix: str) -> None:
    """Remove what does not belong in the run folder (a full one leaves a new kernel no
    room for its sockets). rmtree neither follows links nor descends into one swapped in
    meanwhile."""
    with contextlib.suppress(OSError):
        for entry in run_dir.iterdir():
            if entry.name in RUN_FOLDER_ENTRIES or entry.name.startswith(socket_prefix):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
