"""What the service checks before it binds its port: settings that cannot work stop the
start with one sentence, rather than a service that answers but whose every sandbox
fails (a remote engine, a missing image, limits the engine cannot give).

This is the one way the Docker backend is made from settings (the service, its tests and
the MCP stdio process all use ``sandbox_backend``).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from interpreter.config import Settings, parse_size
from interpreter.errors import SandboxError
from interpreter.sandboxes.base import EngineCapacity
from interpreter.sandboxes.docker_backend import DockerSandboxBackend

#: Schemes of a Docker engine on this machine: the run folders are its to mount.
LOCAL_ENGINE_SCHEMES = ("", "unix")


class StartupRefused(Exception):
    """Settings the service cannot run with; the message is one sentence saying why."""


def sandbox_backend(settings: Settings) -> DockerSandboxBackend:
    """The Docker backend ``settings`` name, checked: a local engine that answers, with
    the sandbox image and runtime, able to give one sandbox its limits."""
    check_engine_is_local(settings)
    backend = DockerSandboxBackend.from_settings(settings)
    try:
        backend.check()
        check_limits(settings, backend.engine_capacity())
    except SandboxError as exc:
        backend.close_now()
        raise StartupRefused(exc.message) from exc
    except StartupRefused:
        backend.close_now()
        raise
    return backend


def check_engine_is_local(settings: Settings) -> None:
    variable, host = (
        ("INTERPRETER_DOCKER_HOST", settings.docker_host)
        if settings.docker_host
        else ("DOCKER_HOST", os.environ.get("DOCKER_HOST", ""))
    )
    if urlsplit(host).scheme not in LOCAL_ENGINE_SCHEMES:
        raise StartupRefused(
            f"{variable}={host} names a Docker engine reached over the network, which cannot "
            "run this service's sandboxes: the service reaches each sandbox's kernel and "
            f"agent through sockets in a folder on this machine ({settings.run_root}), which "
            "an engine elsewhere cannot mount, so use a local engine's unix socket."
        )


def check_limits(settings: Settings, capacity: EngineCapacity) -> None:
    """A sandbox's own limits must fit in what the engine has; past them no sandbox
    would ever start (Docker refuses CPUs beyond its count), or every one would be
    promised memory that is not there."""
    if settings.cpus > capacity.cpus:
        raise StartupRefused(
            f"INTERPRETER_CPUS={settings.cpus:g} is more than the {capacity.cpus} CPUs the "
            f"Docker engine has, so no sandbox could start: set it to at most {capacity.cpus}."
        )
    memory = parse_size(settings.memory_limit)
    if memory > capacity.memory_bytes:
        raise StartupRefused(
            f"INTERPRETER_MEMORY_LIMIT={settings.memory_limit} is more than the "
            f"{capacity.memory_bytes / 1024**3:.1f} GiB of memory the Docker engine has: set "
            "it lower."
        )
