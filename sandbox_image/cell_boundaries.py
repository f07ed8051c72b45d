"""Keeps what one execution does out of the next, inside the kernel.

Installed into every kernel by ``sandbox_startup``. Four rules, each closing a way in
which a cell used to reach into later ones:

- **An interrupt lands only in the user's code.** ipykernel turns SIGINT into a
  KeyboardInterrupt for the whole time it handles a request. One that lands in its own
  code around the cell (publishing the input, sending the reply) aborts the handler
  without an ``execute_reply``; the service then waits in vain and restarts the kernel,
  and the state is lost. Here a SIGINT raises only while the cell's own code runs; one
  that comes earlier or later is dropped (the service repeats its interrupts until the
  execution ends).
- **Output belongs to the execution that started its writer.** A thread inherits the
  context (and so the parent message) of the code that started it, and a task given to
  a thread pool that of the code that submitted it; file descriptors 1 and 2 are a fresh
  pair of pipes for each execution, so processes inherit their execution's. Once an
  execution has ended, what its threads and processes still write is dropped, never
  shown in a later execution.
- **Copies of the kernel made by ``os.fork`` do not outlive their execution.** One that
  gets back to the kernel's own code exits at once (its ZMQ sockets do not work after a
  fork); those still running when the execution ends are ended then, unless
  ``multiprocessing`` manages them. A fork bomb's copies would otherwise fork on into
  every slot that frees up, for good.
- **The kernel reaps its forked children** that have exited, at the start and end of
  every execution (``multiprocessing``'s excepted), so that they do not hold the
  sandbox's process slots. Code that waits for its own forked children with
  ``os.waitpid`` must do so in the execution that forked them.

Processes that run another program (``subprocess.Popen``, a server) live on across
executions, as a Jupyter user expects; the agent ends every one of them when the kernel
restarts.
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import os
import selectors
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

PIPE_READ_SIZE = 1 << 16
# How long the end of an execution waits for ended copies that the agent must reap.
ENDED_COPIES_WAIT_S = 2.0


def install(shell: Any) -> None:
    """Install the four rules in the running kernel (``shell`` is ``get_ipython()``)."""
    kernel_pid = os.getpid()
    _interrupt_only_user_code(shell)
    _threads_inherit_context()
    pipes = ExecutionPipes({1: sys.stdout, 2: sys.stderr})
    copies = ForkedCopies(kernel_pid)

    def before_execution() -> None:
        copies.reap()
        pipes.begin(sys.stdout.parent_header)

    def after_execution() -> None:
        copies.end_leftovers()
        pipes.end()
        copies.reap()

    def leave_if_copy() -> None:
        if os.getpid() != kernel_pid:
            os._exit(0)

    shell.events.register("pre_execute", before_execution)
    # First of all: a copy must not run the kernel's own clean-up (the inline backend
    # would send its figures, through ZMQ sockets that do not work after a fork).
    shell.events.callbacks["post_execute"].insert(0, leave_if_copy)
    shell.events.register("post_execute", after_execution)


def _interrupt_only_user_code(shell: Any) -> None:
    run_code = type(shell).run_code.__code__

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        # The cell's code is the module-level frame that IPython's run_code calls. Code
        # that run_code itself runs (the traceback of a first interrupt) is not the cell.
        while frame is not None and frame.f_back is not None:
            if frame.f_back.f_code is run_code:
                if frame.f_code.co_name == "<module>":
                    raise KeyboardInterrupt
                return
            frame = frame.f_back

    kernel = shell.kernel

    def pre_handler_hook() -> None:
        # ipykernel's own hook installs default_int_handler; its post_handler_hook puts
        # back whatever was there before (SIG_IGN between requests).
        kernel.saved_sigint_handler = signal.signal(signal.SIGINT, on_sigint)

    kernel.pre_handler_hook = pre_handler_hook


def _threads_inherit_context() -> None:
    start = threading.Thread.start

    def start_in_context(self: threading.Thread) -> None:
        context = contextvars.copy_context()
        run = self.run
        with contextlib.suppress(AttributeError):  # a subclass with __slots__
            self.run = lambda: context.run(run)  # type: ignore[method-assign]
        start(self)

    threading.Thread.start = start_in_context  # type: ignore[method-assign]
    submit = ThreadPoolExecutor.submit

    def submit_in_context(self: ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return submit(self, contextvars.copy_context().run, fn, *args, **kwargs)

    ThreadPoolExecutor.submit = submit_in_context  # type: ignore[method-assign]


class ExecutionPipes:
    """File descriptors 1 and 2 of the kernel, a fresh pipe pair per execution.

    What arrives on an execution's pipes is written to the kernel's output streams
    under that execution's parent message, until the execution ends; after that it is
    read and dropped (not left unread: a writer would block, or die of SIGPIPE). Between
    executions the descriptors point back at the container's own output (the agent's
    log), where the kernel's own messages belong.

    ipykernel's own capture of the descriptors is switched off by the agent
    (``capture_fd_output``): it sends everything to whichever execution is current.
    """

    def __init__(self, streams: dict[int, Any]) -> None:
        self._streams = streams
        self._originals = {fd: os.dup(fd) for fd in streams}
        self._lock = threading.Lock()
        # epoll: pipes registered from the kernel's thread are watched at once.
        self._selector = selectors.DefaultSelector()
        self._current: list[_Pipe] = []
        # A cell may run another (get_ipython().run_cell): only the outermost counts.
        self._depth = 0
        # Started now, while the sandbox surely has a free pid.
        threading.Thread(target=self._read_forever, name="execution-pipes", daemon=True).start()

    def begin(self, parent: dict[str, Any]) -> None:
        self._depth += 1
        if self._depth > 1:
            return
        with self._lock:
            self._current = []
            for fd, stream in self._streams.items():
                read_end, write_end = os.pipe()
                os.set_blocking(read_end, False)
                os.dup2(write_end, fd)
                os.close(write_end)
                pipe = _Pipe(read_end, stream, dict(parent))
                self._current.append(pipe)
                self._selector.register(read_end, selectors.EVENT_READ, pipe)

    def end(self) -> None:
        """Pass on what the execution's writers have written so far, then stop."""
        self._depth = max(0, self._depth - 1)
        if self._depth:
            return
        with self._lock:
            for fd, original in self._originals.items():
                os.dup2(original, fd)
            for pipe in self._current:
                while pipe.open and not pipe.ended:
                    if not self._pass_on(pipe):
                        break
                pipe.ended = True
            self._current = []

    def _read_forever(self) -> None:
        while True:
            for key, _ in self._selector.select():
                with self._lock:
                    pipe: _Pipe = key.data
                    if pipe.open:
                        self._pass_on(pipe)

    def _pass_on(self, pipe: _Pipe) -> bool:
        """Read once from ``pipe`` (lock held); False when nothing was there."""
        try:
            data = os.read(pipe.fd, PIPE_READ_SIZE)
        except BlockingIOError:
            return False
        if not data:  # every writer has closed it
            self._selector.unregister(pipe.fd)
            os.close(pipe.fd)
            pipe.open = False
            return False
        if not pipe.ended:
            text = pipe.decoder.decode(data)
            if text:
                token = pipe.stream.set_thread_parent(pipe.parent)
                try:
                    pipe.stream.write(text)
                finally:
                    pipe.stream.reset_thread_parent(token)
        return True


class _Pipe:
    def __init__(self, fd: int, stream: Any, parent: dict[str, Any]) -> None:
        self.fd = fd
        self.stream = stream
        self.parent = parent
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.open = True
        self.ended = False


class ForkedCopies:
    """Copies of the kernel made by ``os.fork``: reaped once exited, and ended along with
    the execution that made them.

    A copy still running when its execution ends (a fork bomb's, whose copies go on
    forking into every slot that frees up; a forked child left looping) is ended then,
    with every copy it made: nothing the kernel's code can do with one after that is
    worth a slot of the sandbox's. Processes that run another program (``subprocess``,
    an ``exec``) are not copies and live on, as do the workers of ``multiprocessing``,
    which waits for its own. Only direct children are reaped: those of ``subprocess``
    are waited for by their ``Popen``, and reaping one behind its back would lose its
    exit status.
    """

    def __init__(self, kernel_pid: int) -> None:
        self._kernel_pid = kernel_pid
        self._cmdline = _cmdline(kernel_pid)
        self._pids: set[int] = set()
        fork = os.fork

        def tracked_fork() -> int:
            pid = fork()
            if pid and os.getpid() == kernel_pid:
                self._pids.add(pid)
            return pid

        os.fork = tracked_fork

    def end_leftovers(self) -> None:
        managed = self._managed()
        ended: set[int] = set()
        # Again until none is found: a copy may fork while the others are being ended.
        for _ in range(100):
            copies = [
                pid
                for pid in _pids()
                if pid != self._kernel_pid and pid not in managed and _cmdline(pid) == self._cmdline
            ]
            if not copies:
                break
            for pid in copies:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            ended.update(copies)
        # Gone before the execution ends, so the next one finds every slot free: the
        # kernel's own children reaped here, the others (the agent reaps them) awaited.
        # For ENDED_COPIES_WAIT_S at most: a killed process can be slow to go (one
        # stuck in the kernel), and the execution must end regardless; a child of the
        # kernel's not reaped by then is reaped at a later execution's boundary.
        deadline = time.monotonic() + ENDED_COPIES_WAIT_S
        for pid in ended:
            while not self._gone(pid) and time.monotonic() < deadline:
                time.sleep(0.002)

    def _gone(self, pid: int) -> bool:
        """Whether an ended copy has gone: reaped here if it is the kernel's child."""
        if pid not in self._pids:
            return not os.path.exists(f"/proc/{pid}")
        return self._reap_child(pid)

    def reap(self) -> None:
        managed = self._managed()
        for pid in list(self._pids):
            if pid not in managed:
                self._reap_child(pid)

    def _reap_child(self, pid: int) -> bool:
        """Reap the kernel's child ``pid`` if it has exited (or is no longer ours);
        whether it is gone."""
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            self._pids.discard(pid)
        return bool(done)

    @staticmethod
    def _managed() -> set[int | None]:
        multiprocessing_process = sys.modules.get("multiprocessing.process")
        if multiprocessing_process is None:
            return set()
        return {child.pid for child in list(multiprocessing_process._children)}


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _cmdline(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as source:
            return source.read()
    except OSError:
        return None
