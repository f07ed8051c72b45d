"""The Responses API's test server: the real app, real sandboxes, and a scripted model
double (tests/doubles.py) playing harmony completions through the Generator interface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from openai import OpenAI

from interpreter.api.app import create_app
from tests.conftest import RunningServer
from tests.doubles import ScriptedGenerator


@pytest.fixture
def start(make_settings: Callable[..., Any], serve: Callable[..., RunningServer]):
    clients: list[OpenAI] = []

    def start(
        completions: list[str],
        *,
        max_context: int | None = None,
        token_delay_s: float = 0.0,
        **settings: Any,
    ) -> tuple[OpenAI, ScriptedGenerator, RunningServer]:
        double = ScriptedGenerator(
            completions, max_context=max_context, token_delay_s=token_delay_s
        )
        app = create_app(make_settings(**settings), generator=double, cleanup_on_exit=True)
        server = serve(app)
        client = OpenAI(base_url=server.v1, api_key="unused", max_retries=0)
        clients.append(client)
        return client, double, server

    yield start
    for client in clients:
        client.close()
