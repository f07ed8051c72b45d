"""The hostile suite: a container used as a hostile user would, through the service's
HTTP API (POST /v1/containers/{id}/execute), one probe per test, under each runtime.

Every probe shows that the service answers it; that the next execution in the same
container answers correctly (saying so when the kernel had to be replaced); that a
neighbouring container answers `1+1` correctly all the while; and that nothing on the
host changes. How fast (the next execution within 2 s, or 5 s after a memory hog; the
neighbour within twice its idle latency) is measured by bench/hostile.py and recorded
in docs/benchmarks.md: tests never assert a wall-clock time, and the time-outs here only
keep a hung probe from hanging the suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from interpreter.api.app import create_app
from interpreter.config import Settings
from interpreter.sandboxes.docker_backend import SANDBOX_UID
from interpreter.sandboxes.sandbox import RUN_FOLDER_ENTRIES, STATE_LOST_NOTICE
from tests.conftest import RunningServer, start_server, wait_until
from tests.sandbox.conftest import RUNTIMES
from tests.sandbox.hostile_probes import (
    CPU_HOG,
    FILL_DATA,
    FILL_TMP,
    FORK_BOMB,
    MANY_FILES,
    MEMORY_HOG,
    OUTPUT_50MB,
    PROC_SYS,
    RUN_FOLDER,
    SIGINT_IGNORED,
    SIGNALS_TO_AGENT,
    STRAY_OUTPUT,
    Probe,
)

pytestmark = pytest.mark.docker

LOG_LIMIT_BYTES = 1 << 20  # the containers' json-file log (docker_backend.LOG_CONFIG)
# A sandbox's run folder is named by its id (docker_backend: secrets.token_hex(8)).
RUN_FOLDER_NAME = re.compile(r"[0-9a-f]{16}")


@dataclass
class HostileService:
    """One service per runtime for the whole module, and a neighbour container in it."""

    runtime: str
    server: RunningServer
    settings: Settings
    http: httpx.Client
    docker: docker.DockerClient
    neighbour: str = ""

    def create(self) -> str:
        response = self.http.post(f"{self.server.v1}/containers", json={"name": "hostile"})
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def execute(self, container: str, code: str, timeout_s: float | None = None) -> Execution:
        """The service must answer, whatever the code did: 200 and an execution."""
        body: dict[str, Any] = {"code": code}
        if timeout_s is not None:
            body["timeout"] = timeout_s
        response = self.http.post(f"{self.server.v1}/containers/{container}/execute", json=body)
        assert response.status_code == 200, response.text
        execution = Execution(response.json())
        assert execution.body["object"] == "container.execution"
        return execution

    def sandbox(self, container: str) -> Any:
        return self.server.app.state.sessions.get(container, None).sandbox

    def docker_container(self, container: str) -> Any:
        sandbox_id = self.sandbox(container).id
        (found,) = self.docker.containers.list(
            all=True, filters={"label": f"code-interpreter.sandbox={sandbox_id}"}
        )
        return found


@dataclass
class Execution:
    body: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.body["status"])

    def text(self, name: str) -> str:
        return "".join(
            o["text"] for o in self.body["outputs"] if o["type"] == "stream" and o["name"] == name
        )

    @property
    def stdout(self) -> str:
        return self.text("stdout")

    @property
    def stderr(self) -> str:
        return self.text("stderr")

    @property
    def error(self) -> dict[str, Any] | None:
        errors = [o for o in self.body["outputs"] if o["type"] == "error"]
        return errors[-1] if errors else None


@pytest.fixture(scope="module", params=RUNTIMES)
def hostile(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, run_id: str
) -> Iterator[HostileService]:
    root = tmp_path_factory.mktemp(f"hostile-{request.param}")
    settings = Settings(
        data_dir=root / "data",
        run_root=root / "run",
        service_name=f"{run_id}-hostile-{request.param}",
        sandbox_runtime=request.param,
        model="none",
        pool_size=0,
        preimport="",
        memory_limit="384m",
        data_size="256m",
        pids_limit=128,
        # A guard against a hang only: gVisor starts kernels slowly on a loaded machine.
        kernel_ready_timeout_s=120,
    )
    server = start_server(create_app(settings, cleanup_on_exit=True))
    client = docker.from_env()
    with httpx.Client(timeout=300) as http:
        service = HostileService(request.param, server, settings, http, client)
        service.neighbour = service.create()
        try:
            yield service
        finally:
            server.stop()
            client.close()


@dataclass
class Neighbour:
    """Runs `1+1` in the neighbouring container, over and over, while a probe runs."""

    service: HostileService
    answers: list[str] = field(default_factory=list)
    _http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=300))
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Neighbour:
        self._once()  # answered once before the probe starts
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _once(self) -> None:
        response = self._http.post(
            f"{self.service.server.v1}/containers/{self.service.neighbour}/execute",
            json={"code": "1+1"},
        )
        outputs = response.json().get("outputs", []) if response.status_code == 200 else []
        results = [o["data"]["text/plain"] for o in outputs if o["type"] == "result"]
        self.answers.append(results[0] if results else f"HTTP {response.status_code}")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._once()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=300)
        self._once()  # and once after
        self._http.close()
        assert set(self.answers) == {"2"}, self.answers


@dataclass(frozen=True)
class HostView:
    """What the host sees of a container and of the sandbox uid, before and after."""

    config: dict[str, Any]
    running: bool
    writable_layer_bytes: int
    log_bytes: int
    outsiders: frozenset[int]  # host processes of the sandbox uid outside any container
    owned_files: frozenset[str]  # host files of the sandbox uid outside run folders

    @classmethod
    def capture(cls, service: HostileService, container: str) -> HostView:
        found = service.docker_container(container)
        attrs = service.docker.api.inspect_container(found.id)
        (listed,) = service.docker.api.containers(all=True, filters={"id": found.id}, size=True)
        host_config = attrs["HostConfig"]
        log_path = attrs.get("LogPath") or ""
        return cls(
            config={
                key: host_config.get(key)
                for key in (
                    "Memory",
                    "MemorySwap",
                    "PidsLimit",
                    "NanoCpus",
                    "ReadonlyRootfs",
                    "CapDrop",
                    "SecurityOpt",
                    "NetworkMode",
                    "Runtime",
                    "Tmpfs",
                    "Binds",
                )
            }
            | {"User": attrs["Config"]["User"]},
            running=attrs["State"]["Running"],
            writable_layer_bytes=int(listed.get("SizeRw") or 0),
            log_bytes=Path(log_path).stat().st_size if log_path else 0,
            outsiders=frozenset(sandbox_uid_processes_outside_containers()),
            owned_files=frozenset(
                sandbox_uid_files(
                    [Path("/tmp"), service.settings.data_dir], skip=service.settings.run_root
                )
            ),
        )

    def assert_unchanged_by(self, after: HostView) -> None:
        assert after.config == self.config
        assert after.running
        assert after.writable_layer_bytes == 0  # a read-only root: nothing on the host's disk
        assert after.log_bytes <= 2 * LOG_LIMIT_BYTES
        assert not after.outsiders, after.outsiders
        assert after.owned_files == self.owned_files


def sandbox_uid_processes_outside_containers() -> list[int]:
    """Host processes running as the sandbox uid that no container's cgroup holds."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            status = (entry / "status").read_text()
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            if int(uid_line.split()[1]) != SANDBOX_UID:
                continue
            if "docker" not in (entry / "cgroup").read_text():
                found.append(int(entry.name))
    return found


def sandbox_uid_files(roots: list[Path], skip: Path, depth: int = 3) -> list[str]:
    """Files of the sandbox uid under ``roots``, outside run folders: this service's
    (``skip``), and those of any other sandbox that a test run or a benchmark on this
    machine starts or ends meanwhile (``run*/<16 hex digits>``)."""
    found = []
    for root in roots:
        base = len(root.parts)
        for folder, folders, files in os.walk(root):
            here = Path(folder)
            if here == skip or skip in here.parents or len(here.parts) - base >= depth:
                folders[:] = []
                continue
            if here.name.startswith("run"):
                folders[:] = [f for f in folders if not RUN_FOLDER_NAME.fullmatch(f)]
            for name in folders + files:
                with contextlib.suppress(OSError):
                    if (here / name).lstat().st_uid == SANDBOX_UID:
                        found.append(str(here / name))
    return found


def run_probe(
    hostile: HostileService, probe: Probe, check: Callable[[Execution], None]
) -> tuple[str, Execution]:
    """Run ``probe`` in a fresh container, then what every probe must show; return the
    container and the probe's execution for the probe's own checks."""
    container = hostile.create()
    assert hostile.execute(container, "x = 'kept'").status == "ok"
    before = HostView.capture(hostile, container)
    with Neighbour(hostile):
        result = hostile.execute(container, probe.code, timeout_s=probe.timeout_s)
        check(result)
    after = hostile.execute(container, "print(x if 'x' in globals() else 'lost')")
    assert after.status == "ok", after.body
    assert after.stderr == ""
    replaced = result.body["kernel_restarted"] or after.body["kernel_restarted"]
    if probe.keeps_state:
        assert after.stdout == "kept\n"
        assert not replaced
    elif after.stdout == "lost\n":
        assert replaced
        assert STATE_LOST_NOTICE in (result.body["notice"], after.body["notice"])
    else:
        assert after.stdout == "kept\n"
    assert hostile.execute(container, "print(6 * 7)").stdout == "42\n"
    before.assert_unchanged_by(HostView.capture(hostile, container))
    return container, result


def finish(hostile: HostileService, container: str) -> None:
    sandbox_id = hostile.sandbox(container).id
    response = hostile.http.delete(f"{hostile.server.v1}/containers/{container}")
    assert response.status_code == 200
    # Nothing of it is left running on the host.
    assert not hostile.docker.containers.list(
        all=True, filters={"label": f"code-interpreter.sandbox={sandbox_id}"}
    )
    assert not sandbox_uid_processes_outside_containers()


def process_count(hostile: HostileService, container: str) -> int:
    counted = hostile.execute(
        container, "import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]))"
    )
    assert (counted.status, counted.stderr) == ("ok", ""), counted.body
    return int(counted.stdout)


def test_fork_bomb(hostile: HostileService) -> None:
    def check(result: Execution) -> None:
        # Its time-out (60 s) is a legitimate end too: on a loaded machine a bomb ran
        # past it (67.5 s in bench/hostile.py's recorded run, and once in CI), and was
        # stopped. How fast it ends is that benchmark's to say; run_probe checks that
        # the next execution answers and says whether the variables survived.
        assert result.status in {"ok", "died", "timeout"}, result.body
        if result.status == "ok":
            assert "alive" in result.stdout

    container, _ = run_probe(hostile, FORK_BOMB, check)
    # Copies of the kernel exit once back in its code, and are reaped: in the end the
    # agent and the kernel remain, and no execution meanwhile shows anything stray.
    wait_until(lambda: process_count(hostile, container) == 2, timeout_s=120, step_s=0.2)
    finish(hostile, container)


def test_memory_hog(hostile: HostileService) -> None:
    def check(result: Execution) -> None:
        if hostile.runtime == "runsc":
            # The agent limits each process's address space under gVisor (one process
            # over the host's limit would end the whole sandbox): a MemoryError.
            assert result.status == "error"
            assert result.error is not None and result.error["ename"] == "MemoryError"
        else:
            assert result.status == "died"
            assert result.error is not None and result.error["ename"] == "KernelDied"

    container, _ = run_probe(hostile, MEMORY_HOG, check)
    finish(hostile, container)


@pytest.mark.parametrize("probe", [FILL_DATA, FILL_TMP], ids=lambda p: p.name)
def test_filling_a_disk(hostile: HostileService, probe: Probe) -> None:
    def check(result: Execution) -> None:
        assert (result.status, result.stdout) == ("ok", "No space left on device\n")

    container, _ = run_probe(hostile, probe, check)
    # Still full, the sandbox is usable: freeing space makes room again.
    path = "/mnt/data/filler" if probe is FILL_DATA else "/tmp/filler"
    freed = hostile.execute(
        container, f"import os\nos.remove({path!r})\nopen({path!r}, 'w').write('x')\nprint('ok')"
    )
    assert freed.stdout == "ok\n"
    finish(hostile, container)


def test_50_mb_of_output(hostile: HostileService) -> None:
    def check(result: Execution) -> None:
        assert result.status == "ok"
        assert result.body["truncated"]
        # What fits of it is kept, then the marker says the rest was cut.
        assert result.stdout.startswith("x" * 1000)
        assert "[output truncated" in result.stderr
        assert len(result.stdout + result.stderr) <= hostile.settings.max_output_bytes + 200

    container, _ = run_probe(hostile, OUTPUT_50MB, check)
    finish(hostile, container)


def test_output_after_its_cell_has_ended(hostile: HostileService) -> None:
    """A thread, a forked child and a background process print on: none of it reaches a
    later execution. The background process (started on purpose) lives on across
    executions, until the kernel restarts."""

    def check(result: Execution) -> None:
        assert result.status == "ok"
        assert "started" in result.stdout  # among what the chatter printed meanwhile

    container, _ = run_probe(hostile, STRAY_OUTPUT, check)
    for _ in range(5):
        quiet = hostile.execute(container, "import time\ntime.sleep(0.1)\nprint(server.poll())")
        assert (quiet.stdout, quiet.stderr) == ("None\n", "")
    restarted = hostile.http.post(f"{hostile.server.v1}/containers/{container}/restart")
    assert restarted.status_code == 200
    assert process_count(hostile, container) == 2
    finish(hostile, container)


def test_ignoring_interrupts(hostile: HostileService) -> None:
    """A time-out still ends it, with a new kernel (the state is lost, and said so)."""

    def check(result: Execution) -> None:
        assert result.status == "timeout"
        assert result.body["kernel_restarted"]
        assert result.body["notice"] == STATE_LOST_NOTICE

    container, _ = run_probe(hostile, SIGINT_IGNORED, check)
    finish(hostile, container)


def test_signals_to_the_agent(hostile: HostileService) -> None:
    def check(result: Execution) -> None:
        assert (result.status, result.stdout) == ("ok", "sent\n")

    container, _ = run_probe(hostile, SIGNALS_TO_AGENT, check)
    assert hostile.docker_container(container).attrs["RestartCount"] == 0
    finish(hostile, container)


def test_writes_into_the_run_folder(hostile: HostileService) -> None:
    def check(result: Execution) -> None:
        assert result.status == "ok"
        outcomes = dict(line.split(" ", 1) for line in result.stdout.splitlines())
        if hostile.runtime == "runsc":  # the folder is the agent's: nothing is allowed
            assert set(outcomes.values()) <= {"Permission denied", "Operation not permitted"}
        else:
            assert outcomes["fill"] == "No space left on device"

    container, _ = run_probe(hostile, RUN_FOLDER, check)
    # A new kernel must start there: the run folder is put back first.
    restarted = hostile.http.post(f"{hostile.server.v1}/containers/{container}/restart")
    assert restarted.status_code == 200, restarted.text
    assert hostile.execute(container, "print(6 * 7)").stdout == "42\n"
    run_dir = hostile.sandbox(container).record.run_dir
    assert {entry.name for entry in run_dir.iterdir()} <= RUN_FOLDER_ENTRIES
    listed = hostile.http.get(f"{hostile.server.v1}/containers/{container}/files")
    assert listed.status_code == 200
    finish(hostile, container)


def test_probing_proc_and_sys(hostile: HostileService) -> None:
    writes: dict[str, str] = {}

    def check(result: Execution) -> None:
        assert result.status == "ok"
        writes.update(json.loads(result.stdout))

    container, _ = run_probe(hostile, PROC_SYS, check)
    if hostile.runtime == "runsc":
        # gVisor keeps its own score for its own out-of-memory killer; the host's is
        # untouched.
        writes.pop("/proc/self/oom_score_adj")
    assert "written" not in writes.values(), writes
    finish(hostile, container)


def test_cpu_hog(hostile: HostileService) -> None:
    def check(result: Execution) -> None:
        assert result.status == "timeout"
        assert not result.body["kernel_restarted"]

    container, _ = run_probe(hostile, CPU_HOG, check)
    finish(hostile, container)


def test_ten_thousand_files(hostile: HostileService) -> None:
    def check(result: Execution) -> None:
        assert (result.status, result.stdout) == ("ok", "made\n")

    container, _ = run_probe(hostile, MANY_FILES, check)
    listed = hostile.http.get(
        f"{hostile.server.v1}/containers/{container}/files", params={"limit": 100, "order": "asc"}
    )
    assert listed.status_code == 200
    page = listed.json()
    assert [f["path"] for f in page["data"]][:2] == ["/mnt/data/f00000.txt", "/mnt/data/f00001.txt"]
    assert len(page["data"]) == 100 and page["has_more"]
    finish(hostile, container)
