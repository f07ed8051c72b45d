"""The service's settings: one typed object, read from ``INTERPRETER_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from interpreter.sandboxes.base import LABEL_ROLE, SandboxSpec
from interpreter.sandboxes.image import default_tag

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INTERPRETER_", env_file=None)

    # -- HTTP ----------------------------------------------------------------------
    # Without API keys the service binds to loopback only; see `dangerously_expose`.
    host: str = "127.0.0.1"
    port: int = 8000
    # Comma-separated bearer keys. Empty: no auth (loopback only, unless exposed).
    api_keys: str = ""
    # Listen on a non-loopback address without API keys. Anyone who reaches the port
    # can run code in sandboxes.
    dangerously_expose_without_keys: bool = False

    # -- sandboxes -----------------------------------------------------------------
    # The sandbox image; by default the tag scripts/setup.sh builds from sandbox_image/.
    sandbox_image: str = Field(default_factory=default_tag)
    # Docker engine to use; empty: DOCKER_HOST or the default socket.
    docker_host: str = ""
    # Host folder for per-sandbox run folders (kernel ipc sockets, agent socket). In the
    # compose stack it is bind-mounted at the same path into the api container.
    run_root: Path = REPO_ROOT / ".data" / "run"
    # Names the containers of this service instance (labels), for re-adoption and cleanup.
    service_name: str = "code-interpreter"
    # The engine's container runtime for sandboxes: "runc" (Linux namespaces, cgroups,
    # seccomp) or "runsc" (gVisor: a user-space kernel in between, for code you trust
    # less; slower to start, and a sandbox that runs out of memory is lost with its
    # files). `SETUP_RUNSC=1 make setup` registers runsc; see docs/benchmarks.md.
    sandbox_runtime: str = "runc"
    # The uid (and gid) sandboxes run as when the service runs as root: one that no host
    # account, group or subordinate id range has (checked at start), so that whatever
    # escapes a sandbox is nobody on the host. The image's own user has this id.
    sandbox_uid: int = 2_000_000
    # Python modules imported when a kernel starts, so first use is fast. Empty: none.
    preimport: str = "numpy,pandas,matplotlib.pyplot"
    memory_limit: str = "1g"  # per sandbox: 1g, 4g, 16g or 64g as in OpenAI's API
    # The largest memory limit a client may ask for.
    max_memory_limit: str = "4g"
    cpus: float = 1.0  # per sandbox
    pids_limit: int = 256  # per sandbox: contains fork bombs
    data_size: str = "1g"  # size of each sandbox's /mnt/data
    max_output_bytes: int = 1_000_000  # per execution; more is cut with a marker
    # The time-out a model is told about and that its executions get.
    execution_timeout_s: float = 120.0
    # The longest time-out a client may ask for on /execute.
    max_execution_timeout_s: float = 600.0
    kernel_ready_timeout_s: float = 30.0

    # -- sessions ------------------------------------------------------------------
    # Ready sandboxes kept warm: at least pool_size, up to pool_max while claims come
    # (the pool grows with the claims of the last minute, and shrinks back when quiet).
    pool_size: int = 2
    pool_max: int = 16
    pool_demand_window_s: float = 60.0
    # Sandboxes starting at once. 0: one per CPU of this machine, at least 2.
    max_concurrent_starts: int = 0
    idle_ttl_minutes: float = 20.0  # a session ends after this long without use
    max_idle_ttl_minutes: float = 24 * 60.0  # the most a client's expires_after may ask
    # Live sessions at once. 0: as many idle sessions as the Docker engine's memory
    # holds (85% of it, at idle_session_mb each), measured when the service starts.
    max_sessions: int = 0
    # What an idle session takes (bench/sessions.py: 101 MB with the default pre-imports,
    # 46 MB without): sizes the default max_sessions.
    idle_session_mb: int = 100
    # At max_sessions: "evict-idle" ends the least recently used idle session to make
    # room (its conversation carries on in a new container, the model told), and answers
    # 429 only when every session is busy; "reject" answers 429.
    capacity_policy: Literal["evict-idle", "reject"] = "evict-idle"
    # Per API key: live sessions, and responses under way (0: no limit). A key past its
    # own limit is answered 429; other keys are not affected.
    max_sessions_per_key: int = 200
    max_responses_per_key: int = 64
    reap_interval_s: float = 5.0
    max_upload_bytes: int = 512 * 1024 * 1024

    # -- model and responses -------------------------------------------------------
    # "demo" (the shipped model), a local checkpoint folder, a hub id
    # (openai/gpt-oss-20b), random:gpt-oss-20b, a served engine (vllm+http://...,
    # sglang+http://..., llamacpp+http://..., or this project's runner at http://...),
    # or "none" (Containers API only). See model_runner/loading.py.
    model: str = "demo"
    # Model calls in flight at once. 0: what the engine declares (the built-in runner's
    # batch, llama.cpp's slots, 16 for vLLM and SGLang).
    model_concurrency: int = 0
    # Where a local model (not a served one) runs: "own", a child process of the
    # service's (model_runner/process.py), or "inline", a thread of the service's own
    # process, which then shares one interpreter lock with the API.
    model_process: Literal["own", "inline"] = "own"
    # torch's threads for a local model on a CPU. 0: torch's default (one per core),
    # except the demo model, which runs best on one.
    model_threads: int = 0
    # How long a start waits for one token from the model before it serves
    # (ResponsesService.warm_up); past it, it serves without. 0: no warm-up.
    model_warm_up_timeout_s: float = Field(default=120.0, ge=0)
    data_dir: Path = REPO_ROOT / ".data"  # the response store and other state
    max_tool_calls: int = 8  # per response, unless the request asks for fewer
    max_output_tokens: int = 2048  # per response, unless the request asks for fewer
    tool_output_max_tokens: int = 1024  # how much of an execution the model is shown
    # Sampling temperature when a request gives none. Unset: the model's own default
    # (1.0 for gpt-oss, as OpenAI's; 0, greedy, for the demo model; a served engine's
    # own where it says, as llama-server's --temp).
    default_temperature: float | None = None
    # Background responses run at most this many at once, after synchronous ones.
    background_workers: int = 1

    def api_key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())

    def sandbox_spec(self, role: str, memory_limit: str | None = None) -> SandboxSpec:
        """What a new sandbox gets under these settings. ``role`` labels it (``pool``,
        ``session``; benchmarks and tests use their own), and ``memory_limit`` is a
        session's own, when it asked for one."""
        return SandboxSpec(
            memory_limit_bytes=parse_size(memory_limit or self.memory_limit),
            cpus=self.cpus,
            pids_limit=self.pids_limit,
            data_size_bytes=parse_size(self.data_size),
            labels={LABEL_ROLE: role},
        )


SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """``"1g"`` -> bytes. Accepts k, m, g suffixes (case-insensitive) or plain bytes."""
    text = text.strip().lower().removesuffix("b")
    if text and text[-1] in SIZE_UNITS:
        return int(float(text[:-1]) * SIZE_UNITS[text[-1]])
    return int(text)
