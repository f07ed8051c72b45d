"""Sandboxes as hardened Docker containers. The only module that imports ``docker``.

Every container: no network at all, a read-only root filesystem, tmpfs ``/tmp`` and
``/mnt/data`` with size limits, every capability dropped, no-new-privileges, a pids limit,
memory (without swap) and CPU limits, a bounded log, and a uid that no host account has.
The kernel's ipc sockets and the agent's socket live in a per-sandbox host folder
bind-mounted at ``/run/sandbox``: the service reaches the kernel without any TCP port.

The container runtime is the engine's ``runc`` (Linux namespaces and cgroups) or gVisor's
``runsc`` (a user-space kernel between the sandbox and the host's). Under gVisor the
host's limits apply to the whole sandbox, gVisor's own memory included, and one process
that crosses them ends the sandbox; so there the agent puts the per-sandbox limits on
the kernel's processes inside (``RLIMIT_NPROC``, ``RLIMIT_AS``), and the host's limits
get room above them for gVisor itself.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import grp
import json
import logging
import math
import os
import pwd
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import docker
import docker.errors
import docker.types
import requests.exceptions
from docker.models.containers import Container

from interpreter.errors import EngineUnavailable, SandboxError
from interpreter.sandboxes.base import EngineCapacity, SandboxRecord, SandboxSpec
from interpreter.sandboxes.kernel import connection_info

if TYPE_CHECKING:
    from interpreter.config import Settings

log = logging.getLogger(__name__)

LABEL_SERVICE = "code-interpreter.service"
LABEL_SANDBOX = "code-interpreter.sandbox"
CONTAINER_RUN_DIR = "/run/sandbox"
# The kernel's ipc sockets, in a folder of their own in the run folder: the agent gives
# each new kernel a fresh one (see sandbox_image/agent.py, RunFolder).
SOCKET_DIR = "sockets"
# The sandbox image's own user (sandbox_image/Dockerfile). No host account may have it.
SANDBOX_UID = 2_000_000
GVISOR = "runsc"
# Under gVisor a process may kill or stop PID 1 of its own uid (Linux refuses), so there
# the agent runs as root, gVisor's, and starts the kernel as the sandbox user. Root
# inside gVisor is root of gVisor's kernel only; it keeps what the agent needs: to
# become the sandbox user, to signal its processes, and to manage its files.
GVISOR_AGENT_CAPABILITIES = ["SETUID", "SETGID", "KILL", "CHOWN", "DAC_OVERRIDE", "FOWNER"]
TMP_SIZE_BYTES = 256 << 20
SHM_SIZE_BYTES = 64 << 20
# A container's log takes what the kernel writes outside an execution, and anything
# that code writes to the descriptors it kept: bounded, so no sandbox fills the disk.
LOG_CONFIG = {"type": "json-file", "config": {"max-size": "1m", "max-file": "1"}}
# No core dumps, soft or hard, so code inside cannot raise it: a crash would otherwise
# write its memory into the working folder (/mnt/data, the user's files), or hand it to
# the host's core handler where core_pattern is a pipe (which is told the limit). A
# fork bomb's copies crash by the hundred (ZMQ cannot start their threads).
NO_CORE_DUMPS = [docker.types.Ulimit(name="core", soft=0, hard=0)]
# Under gVisor's ptrace platform every sandboxed task costs host tasks and gVisor memory:
# 33 MiB for each fork of a kernel with the default pre-imports, and host stub tasks
# that outlive the sandboxed ones, as copies that are killed and forked again leave
# theirs behind. A fork bomb of 64 tasks peaked at 1,349 to 3,946 host tasks, and once
# in about ten runs reached the host's limit of 4,352: runsc could not start a stub and
# panicked, ending the sandbox. One of 32 tasks peaked at 565 to 760, and ended sooner
# (bench/gvisor_memory.py --arms tasks). So gVisor sandboxes get at most
# GVISOR_MAX_PROCESSES tasks (threads count, as for RLIMIT_NPROC anywhere), under the
# same host limit, and the host's limits room for them, for gVisor itself and for the
# address-space slack: a sandbox that crossed the host's limits would be ended whole.
# The agent holds the sandbox's memory below the host's limit (its MemoryGuard), by
# GVISOR_GUARD_MARGIN: room for the agent to act in, as a fork bomb grew by about 2 GiB
# a second here.
GVISOR_MAX_PROCESSES = 32
GVISOR_HOST_TASKS_PER_PROCESS = 128
GVISOR_HOST_TASKS_BASE = 256
GVISOR_MEMORY_PER_PROCESS_BYTES = 40 << 20
GVISOR_MEMORY_BASE_BYTES = 256 << 20
GVISOR_GUARD_MARGIN_BYTES = 768 << 20
# Address space a process may map beyond the memory limit: a kernel with the default
# pre-imports maps about 300 MiB before it holds any data, and ipykernel holds several
# copies of a large output while it sends it (50 MB printed needs about 300 MB more).
GVISOR_ADDRESS_SPACE_SLACK_BYTES = 1 << 30


# What the Docker SDK raises when the engine cannot be reached: its own errors, and
# requests' (a connection refused, or a socket gone while the engine restarts).
ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)

# A listing gives a stopped container's exit code only in words: "Exited (137) 5 seconds ago".
EXIT_CODE_IN_STATUS = re.compile(r"Exited \((-?\d+)\)")


def engine_unavailable(exc: Exception) -> EngineUnavailable:
    return EngineUnavailable(f"the Docker engine does not answer: {exc}")


def host_connection_file(run_root: Path, sandbox_id: str) -> Path:
    """The kernel connection file the host uses (ipc paths under the run folder)."""
    return run_root / f"{sandbox_id}.kernel.json"


class DockerSandboxBackend:
    """Creates, lists and destroys sandbox containers on one Docker engine."""

    # Class attributes so that bench/gvisor_memory.py can measure other sizes.
    gvisor_max_processes = GVISOR_MAX_PROCESSES
    gvisor_host_tasks_per_process = GVISOR_HOST_TASKS_PER_PROCESS

    def __init__(
        self,
        *,
        image: str,
        run_root: Path,
        service_name: str,
        docker_host: str | None = None,
        preimport: str | None = None,
        runtime: str = "runc",
        uid: int = SANDBOX_UID,
    ) -> None:
        self.runtime = runtime
        self.image = image
        self.run_root = run_root
        self.service_name = service_name
        self.preimport = preimport
        try:
            self._client = (
                docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
            )
        except ENGINE_ERRORS as exc:
            raise engine_unavailable(exc) from exc
        # As root, sandboxes run as a uid of their own and get their folder chowned;
        # otherwise as our own uid, so that we can reach the sockets the kernel creates.
        self.uid = uid if os.geteuid() == 0 else os.getuid()
        self.gid = uid if os.geteuid() == 0 else os.getgid()

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Self:
        """The backend ``settings`` name; ``overrides`` replace any of its arguments."""
        options: dict[str, Any] = {
            "image": settings.sandbox_image,
            "run_root": settings.run_root,
            "service_name": settings.service_name,
            "docker_host": settings.docker_host or None,
            "preimport": settings.preimport,
            "runtime": settings.sandbox_runtime,
            "uid": settings.sandbox_uid,
        }
        return cls(**(options | overrides))

    def check(self) -> None:
        """Fail early, with a clear message, when the engine or the image is missing."""
        self._ping()
        try:
            self._client.images.get(self.image)
            runtimes = self._client.info().get("Runtimes") or {}
        except docker.errors.ImageNotFound as exc:
            raise SandboxError(
                f"the sandbox image {self.image} is missing; run `make setup` to build it"
            ) from exc
        except ENGINE_ERRORS as exc:
            raise engine_unavailable(exc) from exc
        if self.runtime not in runtimes:
            hint = " (SETUP_RUNSC=1 make setup registers it)" if self.runtime == GVISOR else ""
            raise SandboxError(
                f"the Docker engine has no runtime {self.runtime!r}{hint}; it has: "
                f"{', '.join(sorted(runtimes))}"
            )
        if os.geteuid() == 0 and (owner := host_owner_of_id(self.uid)) is not None:
            raise SandboxError(
                f"the sandbox uid {self.uid} belongs to {owner} on this host: whatever left "
                "a sandbox would act as it. Set INTERPRETER_SANDBOX_UID to an id that no "
                "account, group or subordinate id range uses."
            )
        self._remove_stray_run_dirs()

    def _remove_stray_run_dirs(self) -> None:
        """Run folders that no container uses: left by a service killed between making a
        folder and starting its container, or by an engine that lost its containers.
        Their tmpfs would otherwise stay mounted for good.

        This service's own go at any age: one process serves a service name at a time
        (re-adoption removes every container of the name it does not know), so nothing
        of its name is being born now. Another service's recent ones may be, and stay.
        """
        if not self.run_root.is_dir():
            return
        in_use = {
            container.labels.get("code-interpreter.run-dir")
            for container in self._client.containers.list(
                all=True, filters={"label": LABEL_SANDBOX}
            )
        }
        # A sandbox is its folder and, beside it, the host's ID.kernel.json.
        sandbox_ids = {
            path.name.removesuffix(".kernel.json")
            for path in self.run_root.iterdir()
            if path.is_dir() or path.name.endswith(".kernel.json")
        }
        for sandbox_id in sandbox_ids:
            folder = self.run_root / sandbox_id
            host_file = host_connection_file(self.run_root, sandbox_id)
            if str(folder) in in_use:
                continue
            if _made_by(host_file) != self.service_name:
                with contextlib.suppress(OSError):
                    found = folder if folder.exists() else host_file
                    if time.time() - found.stat().st_mtime <= STRAY_AGE_S:
                        continue
            self._remove_files(sandbox_id)

    async def create(self, spec: SandboxSpec) -> SandboxRecord:
        return await asyncio.to_thread(self._create, spec)

    def _create(self, spec: SandboxSpec) -> SandboxRecord:
        sandbox_id = secrets.token_hex(8)
        run_dir = self.run_root / sandbox_id
        key = secrets.token_hex(32)
        # The host's copy lives beside the run folder, not in it: the sandbox can write
        # its run folder, and a file there could be made to say anything (or to be
        # unreadable) by the time a restarted service reads it to re-adopt the sandbox.
        # Written first, naming this service: a restart after a kill from here until the
        # container exists knows the folder for its own leftover, whatever its age.
        self.run_root.mkdir(parents=True, exist_ok=True)
        host_file = host_connection_file(self.run_root, sandbox_id)
        host_info = connection_info(str(run_dir / SOCKET_DIR / "kernel"), key)
        with os.fdopen(os.open(host_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            json.dump({**host_info, MADE_BY: self.service_name}, f)
        run_dir.mkdir(mode=0o700)
        _mount_small_tmpfs(run_dir)
        (run_dir / "kernel.json").write_text(
            json.dumps(connection_info(f"{CONTAINER_RUN_DIR}/{SOCKET_DIR}/kernel", key))
        )
        agent_as_root = self.runtime == GVISOR and os.geteuid() == 0
        if agent_as_root:
            # The agent's (root's, inside gVisor): the kernel only passes through to its
            # own socket folder, and cannot write anything else here.
            run_dir.chmod(0o755)
        elif os.geteuid() == 0:
            for path in (run_dir, run_dir / "kernel.json"):
                os.chown(path, self.uid, self.gid)
        labels = {
            **spec.labels,
            LABEL_SERVICE: self.service_name,
            LABEL_SANDBOX: sandbox_id,
            "code-interpreter.run-dir": str(run_dir),
        }
        threads = str(max(1, math.ceil(spec.cpus)))
        environment = {
            # Numerical libraries start a thread per host core otherwise, for a sandbox
            # that may use one core's worth.
            "OMP_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            # For code that asks who it is (getpass): the uid may have no passwd entry.
            "USER": "sandbox",
            "LOGNAME": "sandbox",
            "SANDBOX_KERNEL_UID": str(self.uid),
            "SANDBOX_KERNEL_GID": str(self.gid),
        }
        if self.preimport is not None:
            environment["SANDBOX_PREIMPORT"] = self.preimport
        limits = self._limits(spec)
        environment.update(limits.pop("environment"))
        try:
            self._client.containers.run(
                self.image,
                detach=True,
                name=f"{self.service_name}-sandbox-{sandbox_id}",
                labels=labels,
                environment=environment,
                user="0:0" if agent_as_root else f"{self.uid}:{self.gid}",
                network_mode="none",
                read_only=True,
                tmpfs={
                    "/tmp": f"rw,nosuid,nodev,size={TMP_SIZE_BYTES},mode=1777",
                    "/mnt/data": (
                        f"rw,nosuid,nodev,size={spec.data_size_bytes},"
                        f"uid={self.uid},gid={self.gid},mode=0755"
                    ),
                },
                volumes={str(run_dir): {"bind": CONTAINER_RUN_DIR, "mode": "rw"}},
                cap_drop=["ALL"],
                cap_add=GVISOR_AGENT_CAPABILITIES if agent_as_root else [],
                security_opt=["no-new-privileges"],
                nano_cpus=int(spec.cpus * 1e9),
                ipc_mode="private",
                shm_size=SHM_SIZE_BYTES,
                ulimits=NO_CORE_DUMPS,
                runtime=self.runtime,
                log_config=LOG_CONFIG,
                # A sandbox has nothing to save when it is stopped, and its agent ignores
                # SIGTERM (code inside could send it): stopped, it is killed at once, so
                # that an engine stopping (or restarting) does not wait for it.
                stop_signal="SIGKILL",
                **limits,
            )
        except ENGINE_ERRORS as exc:
            # A container the engine made but could not start (a limit its kernel
            # refused) stays behind, created: remove it with its folder; the folder even
            # when the engine cannot remove the container now.
            try:
                self._destroy(sandbox_id)
            except SandboxError:
                self._remove_files(sandbox_id)
            if isinstance(exc, docker.errors.APIError | docker.errors.ImageNotFound):
                raise SandboxError(f"could not start a sandbox container: {exc}") from exc
            raise engine_unavailable(exc) from exc
        return SandboxRecord(
            sandbox_id, run_dir, host_file, labels, running=True, runtime=self.runtime
        )

    def _limits(self, spec: SandboxSpec) -> dict[str, Any]:
        """The container's pids and memory limits, and what the agent must enforce.

        The sandbox's file systems are tmpfs: what they hold is memory, charged to the
        container. So they get room of their own above the memory limit; else full files
        would leave a restarted kernel too little memory to start, again and again.
        """
        files = spec.data_size_bytes + TMP_SIZE_BYTES + SHM_SIZE_BYTES
        if self.runtime != GVISOR:
            return {
                "pids_limit": spec.pids_limit,
                "mem_limit": spec.memory_limit_bytes + files,
                # Equal to mem_limit: no swap, so a memory hog is killed, not slowed.
                "memswap_limit": spec.memory_limit_bytes + files,
                "environment": {},
            }
        processes = min(spec.pids_limit, self.gvisor_max_processes)
        address_space = spec.memory_limit_bytes + GVISOR_ADDRESS_SPACE_SLACK_BYTES
        # What the sandbox may use in all: more than one process may take, so a hog
        # meets its MemoryError first, and room for every task's cost in gVisor.
        sandbox_memory = address_space + files + GVISOR_MEMORY_PER_PROCESS_BYTES * processes
        host_memory = sandbox_memory + GVISOR_MEMORY_BASE_BYTES + GVISOR_GUARD_MARGIN_BYTES
        return {
            "pids_limit": GVISOR_HOST_TASKS_BASE + self.gvisor_host_tasks_per_process * processes,
            "mem_limit": host_memory,
            "memswap_limit": host_memory,
            "environment": {
                "SANDBOX_MEMORY_LIMIT": str(sandbox_memory),
                "SANDBOX_PROCESS_LIMIT": str(processes),
                "SANDBOX_ADDRESS_SPACE_LIMIT": str(address_space),
                # glibc reserves 64 MiB of address space per thread's arena otherwise.
                "MALLOC_ARENA_MAX": "2",
            },
        }

    async def destroy(self, sandbox_id: str) -> None:
        await asyncio.to_thread(self._destroy, sandbox_id)

    def _destroy(self, sandbox_id: str) -> None:
        for container in self._containers({LABEL_SANDBOX: sandbox_id}):
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
            except ENGINE_ERRORS as exc:
                raise engine_unavailable(exc) from exc
        self._remove_files(sandbox_id)

    def _remove_files(self, sandbox_id: str) -> None:
        """A sandbox's run folder and, beside it, the host's connection file."""
        _remove_run_dir(self.run_root / sandbox_id)
        host_connection_file(self.run_root, sandbox_id).unlink(missing_ok=True)

    async def list(self) -> builtins.list[SandboxRecord]:
        return await asyncio.to_thread(self._list)

    def _list(self) -> builtins.list[SandboxRecord]:
        return [self._record(container) for container in self._containers({})]

    def _record(self, container: Container) -> SandboxRecord:
        # Sparse listings and inspections put the labels and the state in different
        # places, and give the state as a word or as an object.
        attrs = container.attrs
        labels = dict(attrs.get("Labels") or (attrs.get("Config") or {}).get("Labels") or {})
        sandbox_id = labels[LABEL_SANDBOX]
        run_dir = Path(labels.get("code-interpreter.run-dir", self.run_root / sandbox_id))
        state = attrs.get("State")
        details = state if isinstance(state, dict) else {"Status": state}
        if not isinstance(state, dict) and (
            code := EXIT_CODE_IN_STATUS.match(attrs.get("Status", ""))
        ):
            details["ExitCode"] = int(code[1])
        return SandboxRecord(
            sandbox_id,
            run_dir,
            host_connection_file(run_dir.parent, sandbox_id),
            labels,
            running=details.get("Status") == "running",
            stopped_because=_why_stopped(details),
            runtime=self.runtime,
        )

    async def ping(self) -> None:
        await asyncio.to_thread(self._ping)

    def _ping(self) -> None:
        try:
            self._client.ping()
        except ENGINE_ERRORS as exc:
            raise engine_unavailable(exc) from exc

    async def inspect(self, sandbox_id: str) -> SandboxRecord | None:
        return await asyncio.to_thread(self._inspect, sandbox_id)

    def _inspect(self, sandbox_id: str) -> SandboxRecord | None:
        for listed in self._containers({LABEL_SANDBOX: sandbox_id}):
            try:
                return self._record(self._client.containers.get(listed.id))
            except docker.errors.NotFound:
                return None
            except ENGINE_ERRORS as exc:
                raise engine_unavailable(exc) from exc
        return None

    def _containers(self, labels: dict[str, str]) -> builtins.list[Container]:
        filters: dict[str, Any] = {
            "label": [f"{LABEL_SERVICE}={self.service_name}"]
            + [f"{k}={v}" for k, v in labels.items()]
        }
        try:
            # Sparse: the listing alone (labels, state), without inspecting each
            # container, which fails for one that is being removed meanwhile.
            return list(self._client.containers.list(all=True, filters=filters, sparse=True))
        except ENGINE_ERRORS as exc:
            raise engine_unavailable(exc) from exc

    async def stats_memory(self, sandbox_id: str) -> int | None:
        """Current memory use of a sandbox's container, in bytes (for benchmarks)."""

        def read() -> int | None:
            for container in self._containers({LABEL_SANDBOX: sandbox_id}):
                stats = container.stats(stream=False)
                usage = stats.get("memory_stats", {})
                cache = usage.get("stats", {}).get("cache", 0)
                return int(usage.get("usage", 0) - cache)
            return None

        return await asyncio.to_thread(read)

    async def capacity(self) -> EngineCapacity:
        return await asyncio.to_thread(self.engine_capacity)

    def engine_capacity(self) -> EngineCapacity:
        """``capacity``, blocking: for checks before the service runs."""
        try:
            info = self._client.info()
        except ENGINE_ERRORS as exc:
            raise SandboxError(f"the Docker engine does not answer: {exc}") from exc
        return EngineCapacity(memory_bytes=int(info["MemTotal"]), cpus=int(info["NCPU"]))

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    def close_now(self) -> None:
        self._client.close()


def _why_stopped(state: dict[str, Any]) -> str | None:
    """Why a container has stopped for good, in words; None while it runs, or is about
    to (created), or is paused."""
    status = state.get("Status")
    if status not in ("exited", "dead"):
        return None
    if state.get("OOMKilled"):
        return "its container was killed for using more memory than its limit"
    code = state.get("ExitCode")
    if code is None:
        return f"its container is {status}"
    return f"its container exited (code {code}), as when the Docker engine restarts"


def host_owner_of_id(uid: int) -> str | None:
    """Who on this host has ``uid`` as a user or group id, or in a subordinate id range
    (a user namespace's root there is that account); None when nobody does."""
    with contextlib.suppress(KeyError):
        return f"the user {pwd.getpwuid(uid).pw_name!r}"
    with contextlib.suppress(KeyError):
        return f"the group {grp.getgrgid(uid).gr_name!r}"
    for path in ("/etc/subuid", "/etc/subgid"):
        with contextlib.suppress(OSError):
            for line in Path(path).read_text().splitlines():
                fields = line.strip().split(":")
                if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                    first, count = int(fields[1]), int(fields[2])
                    if first <= uid < first + count:
                        return f"{fields[0]!r}'s subordinate ids ({path})"
    return None


# The run folder is the one host folder a sandbox can write (it must create its kernel's
# sockets there). As root, it becomes a tiny tmpfs of its own, so a sandbox filling it
# fills a megabyte, not the host's disk. Without the right to mount (a non-root service,
# or the compose stack's api container) it stays a plain folder.
RUN_DIR_TMPFS_OPTIONS = "size=1m,nr_inodes=256,mode=0700,nosuid,nodev,noexec"
# Another service's run folder with no container may be a sandbox being born until then.
STRAY_AGE_S = 60.0
# The key, in the host's connection file, naming the service that made the sandbox.
MADE_BY = "code_interpreter_service"


def _mount_small_tmpfs(run_dir: Path) -> None:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", RUN_DIR_TMPFS_OPTIONS, "tmpfs", str(run_dir)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        log.debug("run folder stays on disk (%s)", result.stderr.decode().strip())


def _made_by(host_file: Path) -> str | None:
    """The service that wrote a host connection file (None: unreadable, or not ours)."""
    try:
        info = json.loads(host_file.read_text())
    except (OSError, ValueError):
        return None
    made_by = info.get(MADE_BY) if isinstance(info, dict) else None
    return made_by if isinstance(made_by, str) else None


def _remove_run_dir(run_dir: Path) -> None:
    if os.path.ismount(run_dir):
        subprocess.run(["umount", "-l", str(run_dir)], capture_output=True, check=False)
    shutil.rmtree(run_dir, ignore_errors=True)
