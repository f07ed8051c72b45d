"""A client for one Jupyter kernel over ZMQ ``ipc`` sockets.

One reader task per socket routes every incoming message by ``parent_header.msg_id``
to whoever sent the request, so late or stray messages never land in the wrong
execution. Signing and serialisation are jupyter_client's ``Session``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any, cast

import zmq
import zmq.asyncio
from jupyter_client.session import Session

log = logging.getLogger(__name__)

# wait_ready repeats kernel_info this often at first, then more slowly, up to the most.
READY_POLL_FIRST_S = 0.05
READY_POLL_MAX_S = 1.0
RECONNECT_IVL_MS = 10
RECONNECT_IVL_MAX_MS = 500
HANDSHAKE_IVL_MS = 2000

CHANNEL_PORTS = {"shell": 1, "iopub": 2, "stdin": 3, "control": 4, "hb": 5}


def connection_info(ip_prefix: str, key: str) -> dict[str, Any]:
    """A kernel connection file for ipc sockets named ``{ip_prefix}-{port}``."""
    return {
        "transport": "ipc",
        "ip": ip_prefix,
        "key": key,
        "signature_scheme": "hmac-sha256",
        "kernel_name": "python3",
        **{f"{name}_port": port for name, port in CHANNEL_PORTS.items()},
    }


def _report_send_failure(sent: asyncio.Future[Any]) -> None:
    if not sent.cancelled() and sent.exception() is not None:
        log.warning("could not send to the kernel: %s", sent.exception())


class KernelConnection:
    """Shell, control and iopub sockets to one kernel, with message routing."""

    def __init__(self, info: dict[str, Any]) -> None:
        self._info = info
        self.session = Session(key=info["key"].encode(), signature_scheme=info["signature_scheme"])
        self._context = zmq.asyncio.Context()
        self._sockets: dict[str, zmq.asyncio.Socket] = {}
        self._routes: dict[str, asyncio.Queue[tuple[str, dict[str, Any]]]] = {}
        self._readers: list[asyncio.Task[None]] = []
        #: The kernel's own session id, from its last reply: it changes on restart.
        self.kernel_session: str | None = None

    def _address(self, name: str) -> str:
        return f"ipc://{self._info['ip']}-{self._info[f'{name}_port']}"

    def open(self) -> None:
        for name, kind in (("shell", zmq.DEALER), ("control", zmq.DEALER), ("iopub", zmq.SUB)):
            sock = self._context.socket(kind)
            sock.linger = 0
            # The kernel binds its sockets a moment after we connect (and again after
            # a restart): retry soon, not after 100 ms as ZMQ does by default; but back
            # off, since the sandbox can point these paths anywhere (at a host socket).
            sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
            # Under gVisor a connection made while the kernel restarts can be accepted
            # and then never greeted: ZMQ waits out its handshake time (30 s by
            # default) before it tries again, and a restart took 30 s in 3 of 4 tries.
            # A live kernel's ZMQ thread greets at once.
            sock.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_IVL_MS)
            if kind == zmq.SUB:
                sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect(self._address(name))
            self._sockets[name] = sock
            self._readers.append(asyncio.create_task(self._read(name, sock)))

    async def _read(self, channel: str, sock: zmq.asyncio.Socket) -> None:
        while True:
            try:
                frames = cast(list[bytes], await sock.recv_multipart())
            except (asyncio.CancelledError, zmq.ContextTerminated):
                return
            except zmq.ZMQError as exc:
                log.debug("kernel %s socket closed: %s", channel, exc)
                return
            try:
                _, body = self.session.feed_identities(frames)
                msg = self.session.deserialize(body)
            except Exception:
                # A message that fails its signature check is dropped, never trusted.
                log.warning("dropping an unreadable %s message", channel)
                continue
            parent = msg.get("parent_header", {}).get("msg_id")
            if channel in ("shell", "control"):
                self.kernel_session = msg["header"].get("session", self.kernel_session)
            queue = self._routes.get(parent) if parent else None
            if queue is not None:
                queue.put_nowait((channel, msg))

    @contextlib.contextmanager
    def route(self, msg: dict[str, Any]) -> Iterator[asyncio.Queue[tuple[str, dict[str, Any]]]]:
        """Deliver every message whose parent is ``msg`` to the yielded queue."""
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        msg_id = msg["header"]["msg_id"]
        self._routes[msg_id] = queue
        try:
            yield queue
        finally:
            self._routes.pop(msg_id, None)

    def message(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """Build a request (not yet sent), so its route can be opened before it is sent."""
        return self.session.msg(msg_type, content)

    def post(self, channel: str, msg: dict[str, Any]) -> None:
        """Send ``msg`` on ``channel`` (signed by the session) without waiting.

        Not ``Session.send``: for an asyncio socket it sends through a synchronous
        shadow of it, behind pyzmq's back. A send handles the socket's pending
        notifications, among them "a message arrived"; pyzmq, not told, then never
        wakes the reader, and the reply waits unread forever (seen as a kernel that
        answered kernel_info, then nothing, about once in 50 starts on a busy machine).
        """
        frames = self.session.serialize(msg)
        sent = asyncio.ensure_future(self._sockets[channel].send_multipart(frames))
        sent.add_done_callback(_report_send_failure)

    async def request(
        self, msg_type: str, content: dict[str, Any], timeout_s: float
    ) -> dict[str, Any]:
        """Send one shell request and return its reply's content; TimeoutError if none
        comes in time (a kernel answers shell requests one at a time, after any code it
        is running). What the request prints on iopub is not collected."""
        msg = self.message(msg_type, content)
        with self.route(msg) as queue:
            self.post("shell", msg)
            async with asyncio.timeout(timeout_s):
                while True:
                    channel, reply = await queue.get()
                    if channel == "shell":
                        return cast(dict[str, Any], reply["content"])

    async def wait_ready(self, timeout_s: float) -> None:
        """Wait until the kernel answers ``kernel_info`` on shell *and* iopub.

        Seeing the iopub status for one of our requests proves the SUB socket is
        connected; before that, outputs of a first execution could be lost (ZMQ's slow
        joiner). Requests are repeated, more and more slowly, until one is seen on both;
        an answer to any of them counts. (Waiting only for the latest one livelocked a
        kernel starting on a busy machine: each answer came after the next request was
        sent, and the backlog of requests kept growing.)
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        replied: set[str] = set()
        announced: set[str] = set()
        interval = READY_POLL_FIRST_S
        try:
            while True:
                msg = self.message("kernel_info_request", {})
                self._routes[msg["header"]["msg_id"]] = queue
                self.post("shell", msg)
                attempt_end = min(deadline, loop.time() + interval)
                while (remaining := attempt_end - loop.time()) > 0:
                    try:
                        channel, reply = await asyncio.wait_for(queue.get(), remaining)
                    except TimeoutError:
                        break
                    parent = reply["parent_header"]["msg_id"]
                    if channel == "shell":
                        replied.add(parent)
                    elif reply["msg_type"] == "status":
                        announced.add(parent)
                    if replied & announced:
                        return
                if loop.time() >= deadline:
                    raise TimeoutError("the kernel did not answer kernel_info in time")
                interval = min(interval * 1.5, READY_POLL_MAX_S)
        finally:
            for route, target in list(self._routes.items()):
                if target is queue:
                    del self._routes[route]

    async def close(self) -> None:
        for task in self._readers:
            task.cancel()
        for task in self._readers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sock in self._sockets.values():
            sock.close(linger=0)
        self._context.term()
        self._readers.clear()
        self._sockets.clear()
