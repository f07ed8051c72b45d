"""Fixtures for the session tests: a real service (uvicorn in a thread, real Docker
sandboxes) and the official ``openai`` SDK as its client."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from openai import OpenAI

from interpreter.api.app import create_app
from interpreter.config import Settings
from interpreter.sessions.manager import SessionManager
from tests.conftest import RunningServer, docker_containers, start_server, wait_until


@dataclass
class Service:
    server: RunningServer
    settings: Settings
    http: httpx.Client

    @property
    def manager(self) -> SessionManager:
        return self.server.app.state.sessions  # type: ignore[no-any-return]

    clients: dict[str, OpenAI] = field(default_factory=dict)

    def client(self, api_key: str = "no-key") -> OpenAI:
        """The official SDK, pointed at this service (one client per key)."""
        if api_key not in self.clients:
            self.clients[api_key] = OpenAI(
                base_url=self.server.v1, api_key=api_key, max_retries=0, timeout=120
            )
        return self.clients[api_key]

    def execute(
        self, container_id: str, code: str, *, api_key: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """POST /v1/containers/{id}/execute; the decoded answer, whatever its status."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        response = self.http.post(
            f"{self.server.v1}/containers/{container_id}/execute",
            json={"code": code, **extra},
            headers=headers,
        )
        body: dict[str, Any] = response.json()
        body["http_status"] = response.status_code
        return body

    def reap(self, now: float) -> int:
        """Reap idle sessions as of ``now``, on the server's loop."""
        return self.server.call(self.manager.reap(now))

    def health(self) -> dict[str, Any]:
        return self.http.get(f"{self.server.base_url}/healthz").json()  # type: ignore[no-any-return]

    def metric(self, name: str, labels: str = "") -> float:
        """One sample of /metrics, e.g. ``metric("interpreter_pool_ready")``; 0 if absent."""
        text = self.http.get(f"{self.server.base_url}/metrics").text
        wanted = f"{name}{{{labels}}}" if labels else name
        for line in text.splitlines():
            key, _, value = line.rpartition(" ")
            if key == wanted:
                return float(value)
        return 0.0


StartService = Callable[..., Service]


def remove_containers(service_name: str) -> list[str]:
    """Remove what a service left behind; return the ids removed."""
    import docker
    import docker.errors

    client = docker.from_env()
    try:
        left = client.containers.list(
            all=True, filters={"label": f"code-interpreter.service={service_name}"}, sparse=True
        )
        for container in left:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        return [c.id for c in left]
    finally:
        client.close()


@pytest.fixture
def start_service(
    make_settings: Callable[..., Settings], http: httpx.Client
) -> Iterator[StartService]:
    """Start a service with ``Settings`` overrides (no pre-imports and no warm pool unless
    asked: cold starts are cheaper then). At the end of the test its server stops, and
    not one of its containers may be left."""
    running: list[tuple[RunningServer, Settings]] = []
    services: list[Service] = []

    def start(**overrides: Any) -> Service:
        values: dict[str, Any] = {"preimport": "", "pool_size": 0}
        values.update(overrides)
        settings = make_settings(**values)
        server = start_server(create_app(settings, cleanup_on_exit=True))
        running.append((server, settings))
        services.append(Service(server, settings, http))
        return services[-1]

    yield start
    for service in services:
        for client in service.clients.values():
            client.close()
    for server, _ in running:
        server.stop()
    leaked: list[str] = []
    for _, settings in running:
        name = settings.service_name
        try:
            wait_until(lambda name=name: not docker_containers(name), timeout_s=30)
        except AssertionError:
            leaked += remove_containers(name)
    assert not leaked, f"containers left after the service stopped: {leaked}"
