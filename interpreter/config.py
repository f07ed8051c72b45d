"""The service's settings: one typed object, read from ``INTERPRETER_*`` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    pool_size: int = 2  # ready sandboxes kept warm; 0 disables the pool
    idle_ttl_minutes: float = 20.0  # a session ends after this long without use
    max_idle_ttl_minutes: float = 24 * 60.0  # the most a client's expires_after may ask
    max_sessions: int = 64  # live sessions at once; more are answered 429
    reap_interval_s: float = 5.0
    max_upload_bytes: int = 512 * 1024 * 1024

    # -- model and responses -------------------------------------------------------
    # "demo" (the shipped model), a local checkpoint folder, a hub id
    # (openai/gpt-oss-20b), random:gpt-oss-20b, or a served runner's http:// URL.
    model: str = "demo"
    data_dir: Path = REPO_ROOT / ".data"  # the response store and other state
    max_tool_calls: int = 8  # per response, unless the request asks for fewer
    max_output_tokens: int = 2048  # per response, unless the request asks for fewer
    tool_output_max_tokens: int = 1024  # how much of an execution the model is shown
    # Sampling temperature when a request gives none. Unset: 1.0 as OpenAI does, except
    # for the demo model, a small demonstrator that is only reliable when greedy.
    default_temperature: float | None = None
    # Background responses run at most this many at once, after synchronous ones.
    background_workers: int = 1

    def temperature_default(self) -> float:
        if self.default_temperature is not None:
            return self.default_temperature
        return 0.0 if self.model == "demo" else 1.0

    def api_key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())


SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """``"1g"`` -> bytes. Accepts k, m, g suffixes (case-insensitive) or plain bytes."""
    text = text.strip().lower().removesuffix("b")
    if text and text[-1] in SIZE_UNITS:
        return int(float(text[:-1]) * SIZE_UNITS[text[-1]])
    return int(text)
