"""Responses across a stop and a start of the service: what a graceful stop does to
responses under way, and what the next start makes of those a stop or a crash left
unfinished."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from openai import OpenAI

from interpreter.api.app import create_app
from interpreter.responses.store import ResponseStore, StoredResponse
from tests.conftest import RunningServer, wait_until
from tests.doubles import ScriptedGenerator, final

pytestmark = [pytest.mark.docker]

TOOLS: list[Any] = [{"type": "code_interpreter", "container": {"type": "auto"}}]


def test_a_stop_ends_streams_with_a_final_event_and_leaves_background_work_queued(
    make_settings: Callable[..., Any], serve: Callable[..., RunningServer]
) -> None:
    settings = make_settings()
    slow = "word " * 2000  # never finishes before the stop
    double = ScriptedGenerator([final(slow), final(slow)], token_delay_s=0.01)
    server = serve(create_app(settings, generator=double, cleanup_on_exit=True))
    service = server.app.state.responses
    with OpenAI(base_url=server.v1, api_key="unused", max_retries=0) as client:
        background = client.responses.create(model="scripted", input="bg", background=True)
        wait_until(lambda: client.responses.retrieve(background.id).status == "in_progress")
        stream = client.responses.create(model="scripted", input="hello", stream=True)
        types = []
        for event in stream:
            types.append(event.type)
            if event.type == "response.output_text.delta" and len(types) == 5:
                server.loop.call_soon_threadsafe(service.begin_shutdown)
        assert types[-1] == "response.failed"
        final_response = event.response  # type: ignore[union-attr]
        assert final_response.error is not None
        assert "shutting down" in final_response.error.message
    server.stop()
    # The background response was left to run again: queued, in the store.
    store = ResponseStore(settings.data_dir / "responses.sqlite3")
    try:
        body = _body(store, background.id)
    finally:
        store.close()
    assert body["status"] == "queued"


def _body(store: ResponseStore, response_id: str) -> dict[str, Any]:
    return asyncio.run(store.get(response_id, None)).body


def test_the_next_start_settles_what_the_last_run_left_unfinished(
    make_settings: Callable[..., Any], serve: Callable[..., RunningServer]
) -> None:
    settings = make_settings()
    store = ResponseStore(settings.data_dir / "responses.sqlite3")

    def unfinished(response_id: str, *, background: bool, ran_code: bool) -> StoredResponse:
        output = [{"type": "code_interpreter_call", "id": "ci_1", "status": "interpreting",
                   "code": "x = 1", "container_id": "cntr_gone", "outputs": None}]  # fmt: skip
        request = {"model": "scripted", "input": "again", "background": background}
        return StoredResponse(
            id=response_id,
            owner=None,
            body={
                "id": response_id,
                "object": "response",
                "status": "in_progress",
                "background": background,
                "output": output if ran_code else [],
            },
            input_items=[],
            messages=[],
            conversation_date="2026-12-01",
            container_id=None,
            root_id=response_id,
            request=(
                {"request": request, "base_url": "http://127.0.0.1/", "affinity": None}
                if background
                else None
            ),
        )

    for stored in (
        unfinished("resp_streamed", background=False, ran_code=False),
        unfinished("resp_bg_fresh", background=True, ran_code=False),
        unfinished("resp_bg_ran_code", background=True, ran_code=True),
    ):
        asyncio.run(store.save(stored))
    store.close()

    double = ScriptedGenerator([final("Done again.")])
    server = serve(create_app(settings, generator=double, cleanup_on_exit=True))
    with OpenAI(base_url=server.v1, api_key="unused", max_retries=0) as client:
        streamed = client.responses.retrieve("resp_streamed")
        assert streamed.status == "failed" and streamed.error is not None
        assert "did not finish" in streamed.error.message
        ran_code = client.responses.retrieve("resp_bg_ran_code")
        assert ran_code.status == "failed" and ran_code.error is not None
        assert "not run again" in ran_code.error.message
        assert ran_code.output[0].status == "incomplete"  # type: ignore[union-attr]
        wait_until(lambda: client.responses.retrieve("resp_bg_fresh").status == "completed")
        assert client.responses.retrieve("resp_bg_fresh").output_text == "Done again."
