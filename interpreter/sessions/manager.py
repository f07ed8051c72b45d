"""The session manager: per-conversation sandboxes with a sliding idle time-to-live.

A session (``cntr_...``) owns one sandbox. Executions in a session run one at a time, in
arrival order. Each use slides the idle deadline; the reaper ends sessions past it.
Session metadata is kept in the data folder (not in the sandbox's run folder, which the
sandbox itself can write), so a restarted service re-adopts live sessions.

A session whose container has stopped for good (the Docker engine restarted without
keeping its containers, or a gVisor sandbox was ended whole for its memory) is ended as
expired, saying why, both when it is next used and by a periodic check; its
conversation then carries on in a new container. While the engine does not answer at
all, nothing is ended: requests get 503 with Retry-After until it is back.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from interpreter.config import Settings, parse_size
from interpreter.errors import (
    EngineUnavailable,
    FileNotFound,
    InterpreterError,
    InvalidRequest,
    KernelBusy,
    PayloadTooLarge,
    SandboxError,
    SessionExpired,
    SessionLimitReached,
    SessionNotFound,
)
from interpreter.metrics import Metrics
from interpreter.sandboxes.agent import SandboxFile
from interpreter.sandboxes.base import SandboxBackend
from interpreter.sandboxes.introspection import Completion, Inspection, Namespace
from interpreter.sandboxes.outputs import ExecutionResult
from interpreter.sandboxes.sandbox import OutputCallback, Sandbox
from interpreter.sessions.history import ExecutionHistory
from interpreter.sessions.pool import SandboxFactory, WarmPool
from interpreter.storage import remove_partial_writes, write_atomically

log = logging.getLogger(__name__)

MEMORY_LIMITS = ("1g", "4g", "16g", "64g")
#: The share of the engine's memory that idle sessions may fill, when the session limit
#: follows from memory; the rest is for the sessions that are working, and the host.
MEMORY_FOR_SESSIONS = 0.85
#: The session limit before the engine's memory is known (start() replaces it).
DEFAULT_MAX_SESSIONS = 64
DATA_ROOT = "/mnt/data"
# How long a question to the kernel (completion, help, variables) waits for it to be free.
QUESTION_WAIT_S = 2.0
# Names a client may give a file: no path separators, no control characters, no
# leading dot (which would hide it), and not too long.
FILE_NAME = re.compile(r"^[^/\\\x00-\x1f\x7f.][^/\\\x00-\x1f\x7f]{0,254}$")

FileSource = Literal["user", "assistant"]

# Why a session's container is gone, in words (see SessionInfo.lost_because).
REMOVED = "its container no longer exists (removed, or lost with the Docker engine's state)"
STOPPED_WHILE_AWAY = "its container stopped while the service was not running"
UNREADABLE_WHILE_AWAY = "its sandbox no longer answered when the service restarted"


@dataclass
class FileRecord:
    id: str
    path: str
    bytes: int
    created_at: int
    source: FileSource


@dataclass
class SessionInfo:
    """What is persisted about a session."""

    id: str
    name: str
    owner: str | None
    sandbox_id: str
    created_at: int
    ttl_s: float
    memory_limit: str
    status: Literal["running", "expired", "deleted"] = "running"
    files: dict[str, FileRecord] = field(default_factory=dict)  # by path
    # Why an expired session ended: "idle" (its time-to-live ran out), "evicted" (ended
    # to make room at the session limit), "lost" (its container stopped or vanished;
    # "engine" in records of earlier versions), with ``lost_because`` in words.
    expired_reason: str | None = None
    lost_because: str | None = None
    # created_at to the microsecond: lists keep creation order within a second.
    created_at_s: float = 0.0


class Session:
    def __init__(self, info: SessionInfo, sandbox: Sandbox) -> None:
        self.info = info
        self.sandbox = sandbox
        self.last_active_at = time.time()
        self.lock = asyncio.Lock()
        self.busy = 0  # executions and file operations running or queued
        self.holds = 0  # responses under way in this session's conversation
        self.history = ExecutionHistory()  # what ran here, for its notebook
        # What changes /mnt/data through the service (executions, uploads, deletions):
        # how many are under way, a count that moves as each starts and ends, and that
        # count when a listing was taken with none under way. While it stands and none
        # is under way, info.files is what /mnt/data holds.
        self.changing = 0
        self.changes = 0
        self.files_listed_at: int | None = None
        self.uploading: set[str] = set()  # paths of uploads under way

    @property
    def idle(self) -> bool:
        """Nothing runs in it and no response is using it: it may be ended for room."""
        return self.busy == 0 and self.holds == 0

    @property
    def id(self) -> str:
        return self.info.id

    def touch(self) -> None:
        self.last_active_at = time.time()

    def expires_at(self) -> float:
        return self.last_active_at + self.info.ttl_s


@contextlib.contextmanager
def changing_files(session: Session) -> Iterator[None]:
    """Around anything that may change the session's /mnt/data (see Session.changes)."""
    session.changing += 1
    session.changes += 1
    try:
        yield
    finally:
        session.changing -= 1
        session.changes += 1


class SessionManager:
    def __init__(self, settings: Settings, backend: SandboxBackend, metrics: Metrics) -> None:
        self.settings = settings
        self.backend = backend
        self.metrics = metrics
        self.factory = SandboxFactory(
            backend,
            max_output_bytes=settings.max_output_bytes,
            ready_timeout_s=settings.kernel_ready_timeout_s,
            metrics=metrics,
        )
        self.pool = WarmPool(
            self.factory,
            lambda: settings.sandbox_spec("pool"),
            minimum=settings.pool_size,
            maximum=max(settings.pool_size, settings.pool_max),
            max_starts=settings.max_concurrent_starts or max(2, os.cpu_count() or 2),
            demand_window_s=settings.pool_demand_window_s,
        )
        self._sessions: dict[str, Session] = {}
        self._pending: dict[str, asyncio.Future[Session]] = {}
        self._ended: dict[str, SessionInfo] = {}
        self._creating = 0
        #: Live sessions at once: the setting, or what the engine's memory holds.
        self.max_sessions = settings.max_sessions or DEFAULT_MAX_SESSIONS
        self._store = settings.data_dir / "sessions"
        self._reaper: asyncio.Task[None] | None = None
        # Sandboxes of ended sessions being removed: the removal outlives a cancelled
        # caller, and ``close`` waits for it.
        self._discarding: set[asyncio.Future[None]] = set()

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if not self.settings.max_sessions:
            capacity = await self.backend.capacity()
            idle_bytes = self.settings.idle_session_mb * 1024**2
            self.max_sessions = max(
                1, int(capacity.memory_bytes * MEMORY_FOR_SESSIONS / idle_bytes)
            )
            log.info(
                "at most %d live sessions: %.1f GiB of engine memory, %d MB per idle session",
                self.max_sessions, capacity.memory_bytes / 1024**3, self.settings.idle_session_mb,
            )  # fmt: skip
        self._store.mkdir(parents=True, exist_ok=True)
        remove_partial_writes(self._store)
        await self._readopt()
        self.pool.start()
        self._reaper = asyncio.create_task(self._reap_forever())

    async def close(self, *, end_sessions: bool = False) -> None:
        """Stop background work and destroy the warm pool. Sessions survive (to be
        re-adopted by the next start) unless ``end_sessions``."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        # Removals a cancelled caller (the reaper just now, a request) started.
        await asyncio.gather(*self._discarding, return_exceptions=True)
        await self.pool.close()
        for session in list(self._sessions.values()):
            if end_sessions:
                await self._end(session, "deleted")
            else:
                await session.sandbox.close()
        self._sessions.clear()
        # Sandboxes of sessions lost while the engine was down, if it is back by now:
        # their run folders' tmpfs would otherwise stay mounted.
        await self.factory.retry_discards()

    async def _readopt(self) -> None:
        """Reconnect to sessions whose containers still run; remove every other sandbox."""
        infos: dict[str, SessionInfo] = {}
        for path in self._store.glob("cntr_*.json"):
            info = _load_info(path)
            if info is None:
                continue
            if info.status == "running":
                infos[info.sandbox_id] = info
            elif info.status == "expired":
                self._ended[info.id] = info
            else:
                path.unlink(missing_ok=True)
        for record in await self.backend.list():
            info = infos.pop(record.id, None)
            if info is None or not record.running:
                log.info("removing orphaned sandbox %s", record.id)
                await self.factory.destroy(record.id)
                if info is not None:
                    self._mark_ended(
                        info, "expired", "lost", record.stopped_because or STOPPED_WHILE_AWAY
                    )
                continue
            try:
                sandbox = Sandbox(
                    record,
                    max_output_bytes=self.settings.max_output_bytes,
                    ready_timeout_s=self.settings.kernel_ready_timeout_s,
                )
            except (OSError, ValueError, KeyError) as exc:
                # Whatever is wrong with one sandbox must not keep the service from starting.
                log.warning("cannot re-adopt sandbox %s: %s", record.id, exc)
                await self.factory.destroy(record.id)
                self._mark_ended(info, "expired", "lost", UNREADABLE_WHILE_AWAY)
                continue
            try:
                await sandbox.connect()
            except SandboxError:
                await self.factory.discard(sandbox)
                self._mark_ended(info, "expired", "lost", UNREADABLE_WHILE_AWAY)
                continue
            self._sessions[info.id] = Session(info, sandbox)
            log.info("re-adopted session %s", info.id)
        for info in infos.values():  # their containers are gone
            self._mark_ended(info, "expired", "lost", REMOVED)
        self.metrics.live_sessions.set(len(self._sessions))

    # -- sessions --------------------------------------------------------------------

    async def create(
        self,
        *,
        owner: str | None,
        name: str = "",
        ttl_minutes: float | None = None,
        memory_limit: str | None = None,
        session_id: str | None = None,
    ) -> Session:
        """A new session; ``session_id`` is one from ``new_session_id``, when the caller
        had to name the container before it existed (a response streams the id first).
        Such a session can be found (``find``) while it is being created."""
        if session_id is None:
            return await self._create(owner, name, ttl_minutes, memory_limit, None)
        pending: asyncio.Future[Session] = asyncio.get_running_loop().create_future()
        self._pending[session_id] = pending
        try:
            session = await self._create(owner, name, ttl_minutes, memory_limit, session_id)
        except BaseException as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved: nobody may be waiting for it
            raise
        finally:
            self._pending.pop(session_id, None)
        pending.set_result(session)
        return session

    async def find(self, session_id: str, owner: str | None) -> Session:
        """Like ``get``, but a session still being created is waited for: its id has
        already been given out (a response names its container as soon as the model
        starts a call)."""
        pending = self._pending.get(session_id)
        if pending is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)
        return self.get(session_id, owner)

    async def _create(
        self,
        owner: str | None,
        name: str,
        ttl_minutes: float | None,
        memory_limit: str | None,
        session_id: str | None,
    ) -> Session:
        if memory_limit is None:
            # The operator's default may be any size (512m, say), not only OpenAI's four.
            memory_limit = self.settings.memory_limit.lower()
        else:
            memory_limit = memory_limit.lower()
            if memory_limit not in MEMORY_LIMITS:
                raise InvalidRequest(
                    f"memory_limit must be one of {', '.join(MEMORY_LIMITS)}",
                    param="memory_limit",
                )
        if parse_size(memory_limit) > parse_size(self.settings.max_memory_limit):
            raise InvalidRequest(
                f"memory_limit {memory_limit} is above this server's maximum, "
                f"{self.settings.max_memory_limit}",
                param="memory_limit",
            )
        ttl_minutes = self.settings.idle_ttl_minutes if ttl_minutes is None else ttl_minutes
        if not 0 < ttl_minutes <= self.settings.max_idle_ttl_minutes:
            raise InvalidRequest(
                f"expires_after.minutes must be above 0 and at most "
                f"{self.settings.max_idle_ttl_minutes:g}",
                param="expires_after.minutes",
            )
        self._check_key_quota(owner)
        await self._make_room()
        self._creating += 1
        try:
            pooled = memory_limit == self.settings.memory_limit.lower()
            source = "pool" if pooled and self.pool.ready else "cold"
            if pooled:
                sandbox = await self.pool.acquire()
            else:
                sandbox = await self.factory.start(
                    self.settings.sandbox_spec("session", memory_limit)
                )
        finally:
            self._creating -= 1
        self.metrics.claims.labels(source).inc()
        created = time.time()
        info = SessionInfo(
            id=session_id or self.new_session_id(),
            name=name,
            owner=owner,
            sandbox_id=sandbox.id,
            created_at=int(created),
            created_at_s=created,
            ttl_s=ttl_minutes * 60.0,
            memory_limit=memory_limit,
        )
        try:
            self._save(info)
        except InterpreterError:
            # A session the data folder cannot hold would not survive a restart: refuse
            # it (507 for a full disk) rather than run it unrecorded.
            await self.factory.discard(sandbox)
            raise
        session = Session(info, sandbox)
        self._sessions[info.id] = session
        self.metrics.live_sessions.set(len(self._sessions))
        return session

    def _check_key_quota(self, owner: str | None) -> None:
        limit = self.settings.max_sessions_per_key
        if owner is None or not limit:
            return
        held = sum(1 for s in self._sessions.values() if s.info.owner == owner)
        if held >= limit:
            raise SessionLimitReached(
                f"This API key holds its maximum of {limit} live containers. Delete one, "
                "or let one expire, and retry.",
                retry_after_s=30,
            )

    async def _make_room(self) -> None:
        """At the session limit, end the least recently used idle session (policy
        evict-idle); 429 when every session is busy, or under the reject policy."""
        if len(self._sessions) + self._creating < self.max_sessions:
            return
        if self.settings.capacity_policy == "evict-idle":
            idle = [s for s in self._sessions.values() if s.idle]
            if idle:
                victim = min(idle, key=lambda s: s.last_active_at)
                log.info("ending idle session %s to make room", victim.id)
                self.metrics.evictions.inc()
                await self._end(victim, "expired", reason="evicted")
                return
            raise SessionLimitReached(
                f"This server holds its maximum of {self.max_sessions} live containers, and "
                "every one of them is running code. Retry in a few seconds.",
                retry_after_s=5,
            )
        raise SessionLimitReached(
            f"This server holds its maximum of {self.max_sessions} live containers. "
            "Delete one or retry later.",
        )

    @staticmethod
    def hold(session: Session) -> None:
        """Keep a session from being ended for room while a response uses it; each hold
        is ended by one ``release``."""
        session.holds += 1

    @staticmethod
    def release(session: Session) -> None:
        session.holds = max(0, session.holds - 1)

    @staticmethod
    def new_session_id() -> str:
        return "cntr_" + secrets.token_hex(16)

    def get(self, session_id: str, owner: str | None) -> Session:
        session = self._sessions.get(session_id)
        if session is not None and session.info.owner == owner:
            return session
        ended = self._ended.get(session_id)
        if ended is not None and ended.owner == owner and ended.status == "expired":
            raise SessionExpired(expiry_message(ended, self.max_sessions))
        # Another owner's session is reported exactly like a missing one.
        raise SessionNotFound(f"No container found with id '{session_id}'.")

    def _gone(self, session: Session) -> SessionNotFound | SessionExpired:
        """The error for a session that ended while a request for it was under way."""
        if session.info.status == "expired":
            return SessionExpired(
                f"Container {session.id} expired while this request was under way."
            )
        return SessionNotFound(f"Container {session.id} was deleted while this request ran.")

    def list(self, owner: str | None) -> list[Session]:
        return sorted(
            (s for s in self._sessions.values() if s.info.owner == owner),
            key=lambda s: (s.info.created_at, s.info.created_at_s),
        )

    async def delete(self, session_id: str, owner: str | None) -> None:
        session = await self.find(session_id, owner)
        await self._end(session, "deleted")

    async def _end(
        self,
        session: Session,
        status: Literal["expired", "deleted"],
        reason: str = "idle",
        because: str | None = None,
    ) -> None:
        # Marked ended before the sandbox goes (which takes a while), so that a request
        # in between is told the container expired rather than that it never existed.
        self._sessions.pop(session.id, None)
        self._mark_ended(session.info, status, reason, because)
        self.metrics.live_sessions.set(len(self._sessions))
        # Shielded: the session is gone from the table already, so a caller cancelled
        # now (the reaper at shutdown) would leave its container running with nothing
        # to remove it until the next start.
        discarding = asyncio.ensure_future(self.factory.discard(session.sandbox))
        self._discarding.add(discarding)
        discarding.add_done_callback(self._discarded)
        await asyncio.shield(discarding)

    def _discarded(self, discarding: asyncio.Future[None]) -> None:
        self._discarding.discard(discarding)
        if not discarding.cancelled() and discarding.exception() is not None:
            log.warning("could not remove a sandbox: %s", discarding.exception())

    def _mark_ended(
        self,
        info: SessionInfo,
        status: Literal["expired", "deleted"],
        reason: str = "idle",
        because: str | None = None,
    ) -> None:
        info.status = status
        info.expired_reason = reason if status == "expired" else None
        info.lost_because = because if status == "expired" else None
        if status == "deleted":
            # Nothing is answered about a deleted container but 404, so nothing of it is
            # kept (readiness checks create and delete one each time).
            self._ended.pop(info.id, None)
            (self._store / f"{info.id}.json").unlink(missing_ok=True)
            return
        self._ended[info.id] = info
        self._save_quietly(info)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reap_interval_s)
            await self.reap()
            try:
                await self.check_sandboxes()
            except Exception:
                # Like the reaper, the check must outlive any one failure.
                log.exception("the check of the sandboxes failed")

    async def check_sandboxes(self) -> int:
        """End the sessions whose containers have stopped for good or vanished, and
        remove such containers that nothing here uses (warm ones, leftovers); how many
        sessions ended. While the engine does not answer, nothing is ended: it may be
        restarting, and its containers may come back."""
        try:
            records = {record.id: record for record in await self.backend.list()}
        except SandboxError as exc:
            log.info("cannot check the sandboxes now: %s", exc.message)
            return 0
        ended = 0
        for session in list(self._sessions.values()):
            record = records.get(session.sandbox.id)
            because = REMOVED if record is None else record.stopped_because
            if because is not None and session.id in self._sessions:
                await self._end_lost(session, because)
                ended += 1
        warm = self.pool.sandbox_ids
        self.pool.drop(
            {i for i in warm if i not in records or records[i].stopped_because is not None}
        )
        used = warm | {session.sandbox.id for session in self._sessions.values()}
        for sandbox_id, record in records.items():
            if sandbox_id not in used and record.stopped_because is not None:
                log.info("removing stopped sandbox %s (%s)", sandbox_id, record.stopped_because)
                await self.factory.destroy(sandbox_id)
        await self.factory.retry_discards()
        return ended

    async def _end_lost(self, session: Session, because: str) -> None:
        log.warning("session %s lost its container: %s", session.id, because)
        self.metrics.lost_sessions.inc()
        await self._end(session, "expired", "lost", because)

    async def _lost_because(self, session: Session) -> str | None:
        """Why a session's container has stopped for good, or None while it runs.
        Raises ``EngineUnavailable`` when the engine cannot say."""
        record = await self.backend.inspect(session.sandbox.id)
        return REMOVED if record is None else record.stopped_because

    @contextlib.asynccontextmanager
    async def _sandbox_call(self, session: Session) -> AsyncIterator[None]:
        """Around a call into a session's sandbox: when it fails, say why. A session
        ended meanwhile says so; one whose container has stopped for good is ended
        (expired, with the reason), so its conversation can carry on in a new one; an
        engine that cannot say is a 503 with Retry-After; otherwise the error stands."""
        try:
            yield
        except (SandboxError, OSError) as exc:
            if session.id not in self._sessions:
                raise self._gone(session) from exc
            because = await self._lost_because(session)
            if because is None:
                raise
            if session.id in self._sessions:
                await self._end_lost(session, because)
            raise SessionExpired(expiry_message(session.info, self.max_sessions)) from exc

    async def check_engine(self) -> None:
        """Raise ``EngineUnavailable`` while the engine does not answer. Before a turn that
        will need a new container: its client then hears 503 with Retry-After, and can
        retry, rather than getting a failed response after the model has run."""
        await self.backend.ping()

    async def check_alive(self, session: Session) -> None:
        """Before a conversation's next turn: raise ``SessionExpired`` if the session's
        container has stopped for good (ending it), ``EngineUnavailable`` if the engine
        cannot say. A container that runs but whose agent is slow to answer passes."""
        if await session.sandbox.responds():
            return
        try:
            async with self._sandbox_call(session):
                raise SandboxError(f"the sandbox of {session.id} does not answer")
        except EngineUnavailable:
            raise
        except SandboxError:
            return  # its container runs: the turn goes on, and meets whatever it is

    async def reap(self, now: float | None = None) -> int:
        """End every idle session past its deadline (as of ``now``, default the clock);
        how many ended. The reaper calls it every ``reap_interval_s``."""
        now = time.time() if now is None else now
        ended = 0
        for session in list(self._sessions.values()):
            if session.idle and now >= session.expires_at():
                log.info("session %s expired", session.id)
                self.metrics.expiries.inc()
                ended += 1
                try:
                    await self._end(session, "expired")
                except Exception:
                    # The reaper must outlive any one failure, or nothing expires again.
                    log.exception("could not remove the sandbox of %s", session.id)
        return ended

    @contextlib.asynccontextmanager
    async def using(self, session: Session) -> AsyncIterator[Sandbox]:
        """Exclusive use of a session's sandbox, in arrival order; keeps it from expiring."""
        session.busy += 1
        session.touch()
        try:
            async with session.lock:
                if session.id not in self._sessions:
                    raise self._gone(session)
                yield session.sandbox
        finally:
            session.busy -= 1
            session.touch()

    # -- execution -------------------------------------------------------------------

    async def execute(
        self,
        session: Session,
        code: str,
        *,
        timeout_s: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecutionResult:
        timeout_s = self.settings.execution_timeout_s if timeout_s is None else timeout_s
        if not 0 < timeout_s <= self.settings.max_execution_timeout_s:
            raise InvalidRequest(
                f"timeout must be above 0 and at most {self.settings.max_execution_timeout_s:g} "
                "seconds",
                param="timeout",
            )
        # Deleted or expired while the code ran: say that, not that the sandbox broke.
        async with self._sandbox_call(session), self.using(session) as sandbox:
            with changing_files(session):
                result = await sandbox.execute(code, timeout_s=timeout_s, on_output=on_output)
            session.history.add(code, result)
        self.metrics.executions.labels(result.status).inc()
        self.metrics.execution_seconds.observe(result.duration_s)
        if result.restart_reason is not None:
            self.metrics.kernel_restarts.labels(result.restart_reason).inc()
        return result

    async def interrupt(self, session: Session) -> bool:
        # Not under the session lock: the point is to stop what holds it.
        session.touch()
        async with self._sandbox_call(session):
            return await session.sandbox.interrupt()

    async def restart(self, session: Session) -> None:
        session.touch()
        async with self._sandbox_call(session):
            await session.sandbox.interrupt()
            async with self.using(session) as sandbox:
                await sandbox.restart()
        self.metrics.kernel_restarts.labels("request").inc()

    # -- questions to the kernel: completion, help, variables ----------------------------

    @contextlib.asynccontextmanager
    async def _idle_kernel(self, session: Session) -> AsyncIterator[Sandbox]:
        """The sandbox, once its kernel is free. These questions wait a moment for a short
        execution (or another question) to end, but never queue behind long-running code
        (a person pressing Tab would wait for it): then they are refused."""
        session.busy += 1
        session.touch()
        try:
            try:
                async with asyncio.timeout(QUESTION_WAIT_S):
                    await session.lock.acquire()
            except TimeoutError:
                raise KernelBusy("The kernel is running code; ask again when it is idle.") from None
            try:
                if session.id not in self._sessions:
                    raise self._gone(session)
                yield session.sandbox
            finally:
                session.lock.release()
        finally:
            session.busy -= 1
            session.touch()

    async def complete(self, session: Session, code: str, cursor_pos: int) -> Completion:
        async with self._sandbox_call(session), self._idle_kernel(session) as sandbox:
            return await sandbox.complete(code, cursor_pos)

    async def inspect(
        self, session: Session, code: str, cursor_pos: int, detail_level: int
    ) -> Inspection:
        async with self._sandbox_call(session), self._idle_kernel(session) as sandbox:
            return await sandbox.inspect(code, cursor_pos, detail_level)

    async def variables(self, session: Session) -> Namespace:
        async with self._sandbox_call(session), self._idle_kernel(session) as sandbox:
            return await sandbox.variables()

    # -- files -----------------------------------------------------------------------

    async def upload(self, session: Session, filename: str, content: bytes) -> FileRecord:
        name = filename.strip()
        if not FILE_NAME.match(name) or name in (".", ".."):
            raise InvalidRequest(
                f"Invalid file name {filename!r}: use a plain name without path separators, "
                "control characters or a leading dot.",
                param="file",
            )
        if len(content) > self.settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"The file is larger than this server's limit of "
                f"{self.settings.max_upload_bytes} bytes."
            )
        session.touch()
        files = session.info.files
        path = f"{DATA_ROOT}/{name}"
        record = FileRecord(
            id="cfile_" + secrets.token_hex(16),
            path=path,
            bytes=len(content),
            created_at=int(time.time()),
            source="user",
        )
        replaced = files.get(path)
        # Recorded first: a record that cannot be stored (a full disk) means no upload,
        # and nothing in the sandbox changed.
        files[path] = record
        session.uploading.add(path)
        try:
            self._save(session.info)
            async with self._sandbox_call(session):
                with changing_files(session):
                    written = await session.sandbox.agent.write_file(path, content)
        except BaseException:
            if replaced is None:
                files.pop(path, None)
            else:
                files[path] = replaced
            self._save_quietly(session.info)
            raise
        finally:
            session.uploading.discard(path)
        record.bytes = written.bytes
        return record

    async def known_files(self, session: Session) -> builtins.list[FileRecord]:
        """``list_files``, without asking the sandbox when nothing has changed /mnt/data
        through the service (an execution, an upload, a deletion) since the last listing.
        Files that a process left running changes meanwhile show at the next listing."""
        if session.changing == 0 and session.files_listed_at == session.changes:
            session.touch()
            return self._sorted_files(session)
        return await self.list_files(session)

    async def list_files(self, session: Session) -> builtins.list[FileRecord]:
        """Files now in /mnt/data; files the code wrote get ids as they are first seen."""
        session.touch()
        changes, quiet = session.changes, session.changing == 0
        async with self._sandbox_call(session):
            present = await session.sandbox.agent.list_files()
        if quiet and session.changing == 0 and session.changes == changes:
            session.files_listed_at = changes  # nothing changed meanwhile: it holds
        files = session.info.files
        seen = {f.path for f in present}
        changed = False
        for path in list(files):
            # An upload under way is not listed until it is whole: its record stays.
            if path not in seen and path not in session.uploading:
                del files[path]
                changed = True
        for found in present:
            record = files.get(found.path)
            if record is None or record.bytes != found.bytes:
                self._register(session, found, record.source if record else "assistant")
                changed = True
        if changed:
            # Files the code wrote are listed even when the data folder cannot record
            # them now; their ids hold until the service restarts.
            self._save_quietly(session.info)
        return self._sorted_files(session)

    @staticmethod
    def _sorted_files(session: Session) -> builtins.list[FileRecord]:
        return sorted(session.info.files.values(), key=lambda r: (r.created_at, r.path))

    def _register(self, session: Session, found: SandboxFile, source: FileSource) -> FileRecord:
        files = session.info.files
        record = files.get(found.path)
        if record is None:
            record = FileRecord(
                id="cfile_" + secrets.token_hex(16),
                path=found.path,
                bytes=found.bytes,
                created_at=int(time.time()),
                source=source,
            )
            files[found.path] = record
        record.bytes = found.bytes
        return record

    async def get_file(self, session: Session, file_id: str) -> FileRecord:
        for record in session.info.files.values():
            if record.id == file_id:
                return record
        # It may be a file the code wrote since the last listing... but then its id is
        # new, so the client cannot know it yet: a plain 404.
        raise FileNotFound(f"No file found with id '{file_id}' in container {session.id}.")

    async def read_file(self, session: Session, file_id: str) -> tuple[FileRecord, bytes]:
        record = await self.get_file(session, file_id)
        session.touch()
        async with self._sandbox_call(session):
            content = await session.sandbox.agent.read_file(
                record.path, limit=parse_size(self.settings.data_size)
            )
        return record, content

    async def delete_file(self, session: Session, file_id: str) -> None:
        record = await self.get_file(session, file_id)
        session.touch()
        async with self._sandbox_call(session):
            with changing_files(session), contextlib.suppress(FileNotFound):
                await session.sandbox.agent.delete_file(record.path)
        session.info.files.pop(record.path, None)
        self._save_quietly(session.info)

    # -- persistence -----------------------------------------------------------------

    def _save(self, info: SessionInfo) -> None:
        write_atomically(self._store / f"{info.id}.json", json.dumps(asdict(info)).encode())

    def _save_quietly(self, info: SessionInfo) -> None:
        """Save, where the request has done what it was asked whether or not its record
        can be kept now (a full disk): the record in memory holds until a restart."""
        try:
            self._save(info)
        except InterpreterError as exc:
            log.error("could not record session %s: %s", info.id, exc.message)

    @property
    def live_count(self) -> int:
        return len(self._sessions)


def expiry_message(info: SessionInfo, max_sessions: int) -> str:
    """What a client is told about a container that expired, and why."""
    if info.expired_reason == "evicted":
        why = (
            f"was ended to make room for new containers (this server holds at most "
            f"{max_sessions}, and it was the least recently used idle one)"
        )
    elif info.expired_reason in ("lost", "engine"):
        why = f"was lost: {info.lost_because or 'its container stopped'}"
    else:
        why = f"expired after {info.ttl_s / 60:g} idle minutes"
    return f"Container {info.id} {why}; its memory and files are gone. Create a new container."


def _load_info(path: Path) -> SessionInfo | None:
    try:
        raw = json.loads(path.read_text())
        files = {p: FileRecord(**f) for p, f in raw.pop("files", {}).items()}
        return SessionInfo(**raw, files=files)
    except (OSError, ValueError, TypeError):
        log.warning("ignoring unreadable session file %s", path)
        return None
