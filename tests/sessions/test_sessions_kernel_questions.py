"""Questions to a container's kernel, beyond OpenAI's API: completions and help (the
kernel's own complete_request and inspect_request) and the variables, all against real
kernels, with the same errors as the other container endpoints."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import wait_until
from tests.sessions.conftest import StartService

pytestmark = pytest.mark.docker


def post(http: httpx.Client, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = http.post(url, json=body)
    return response.status_code, response.json()


def applied(code: str, found: dict[str, Any]) -> list[str]:
    """The code after each completion (offsets in code points, as Python counts)."""
    start, end = found["cursor_start"], found["cursor_end"]
    return [code[:start] + match + code[end:] for match in found["matches"]]


def test_complete_inspect_and_variables(start_service: StartService) -> None:
    # Sessions end after 3 idle seconds unless they ask for longer: one will expire.
    service = start_service(idle_ttl_minutes=0.05, reap_interval_s=0.2)
    client = service.client()
    http = service.http
    box = client.containers.create(
        name="questions", expires_after={"anchor": "last_active_at", "minutes": 5}
    )
    doomed = client.containers.create(name="expires")
    url = f"{service.server.v1}/containers/{box.id}"

    ran = service.execute(
        box.id,
        "import numpy as np, pandas as pd\n"
        "total = 6 * 7\n"
        "frame = pd.DataFrame({'a': [1, 2, 3], 'b': [4.0, 5.0, 6.0]})\n"
        "grid = np.zeros((2, 5), dtype='int32')\n"
        "name = 'x' * 500\n"
        "items = [1, 2, 3]\n"
        "_hidden = 1\n"
        "def helper(n: int) -> int:\n"
        "    '''Doubles n.'''\n"
        "    return 2 * n\n",
    )
    assert ran["status"] == "ok"
    assert ran["execution_count"] == 1

    # Completion: the kernel's own; a match replaces code[cursor_start:cursor_end].
    status, found = post(http, f"{url}/complete", {"code": "frame.hea"})
    assert status == 200
    assert found["object"] == "container.completion"
    assert len(found["types"]) == len(found["matches"])
    assert "frame.head" in applied("frame.hea", found)
    # Runtime completion: a DataFrame's columns, as dictionary keys.
    status, found = post(http, f"{url}/complete", {"code": "frame['"})
    assert status == 200 and "frame['a" in applied("frame['", found)
    # The cursor counts code points: the emoji before it is one, not two.
    code = "s = '😀'; tot + 1"
    status, found = post(http, f"{url}/complete", {"code": code, "cursor_pos": 12})
    assert status == 200
    assert "s = '😀'; total + 1" in applied(code, found)

    # Help for the name at the cursor, as IPython writes it.
    status, helped = post(http, f"{url}/inspect", {"code": "helper(", "cursor_pos": 6})
    assert status == 200
    assert helped["object"] == "container.inspection"
    assert helped["found"] is True
    assert "Doubles n." in helped["data"]["text/plain"]
    status, helped = post(http, f"{url}/inspect", {"code": "no_such_name"})
    assert (status, helped["found"], helped["data"]) == (200, False, {})

    # Variables: names, types, shapes, lengths, short values; nothing private, no modules.
    listed = http.get(f"{url}/variables")
    assert listed.status_code == 200
    body = listed.json()
    assert body["object"] == "container.variables"
    assert body["execution_count"] == 1
    assert body["truncated"] is False
    by_name = {v["name"]: v for v in body["variables"]}
    assert sorted(by_name) == ["frame", "grid", "helper", "items", "name", "total"]
    assert by_name["total"] | {"module": ""} == {
        "name": "total",
        "type": "int",
        "module": "",
        "shape": None,
        "length": None,
        "dtype": None,
        "value": "42",
    }
    assert (by_name["frame"]["type"], by_name["frame"]["shape"]) == ("DataFrame", [3, 2])
    assert (by_name["grid"]["shape"], by_name["grid"]["dtype"]) == ([2, 5], "int32")
    assert by_name["items"]["length"] == 3
    assert by_name["name"]["length"] == 500
    assert len(by_name["name"]["value"]) < 100  # cut short
    assert by_name["helper"]["type"] == "function"

    # None of this moved the execution count or left a name behind.
    after = service.execute(box.id, "print(sorted(k for k in globals() if not k.startswith('_')))")
    assert after["execution_count"] == 2
    names = after["outputs"][0]["text"]
    assert "scope" not in names and "describe" not in names and "result" not in names

    # While code runs, the questions are refused after a moment (a person pressing Tab
    # would otherwise wait for it), not queued behind it.
    running = threading.Thread(target=service.execute, args=(box.id, "import time; time.sleep(6)"))
    running.start()
    try:
        wait_until(lambda: service.manager.get(box.id, None).lock.locked(), timeout_s=10)
        asks = [
            ("POST", "complete", {"code": "tot"}),
            ("POST", "inspect", {"code": "len"}),
            ("GET", "variables", None),
        ]
        with ThreadPoolExecutor(len(asks)) as pool:
            answers = list(
                pool.map(lambda ask: http.request(ask[0], f"{url}/{ask[1]}", json=ask[2]), asks)
            )
        for (_, path, _), busy in zip(asks, answers, strict=True):
            assert busy.status_code == 409, path
            assert busy.json()["error"]["code"] == "kernel_busy"
            assert busy.json()["error"]["type"] == "invalid_request_error"
    finally:
        running.join()
    assert http.get(f"{url}/variables").json()["execution_count"] == 3

    # Bad input and unknown or expired containers: OpenAI's error shape.
    status, error = post(http, f"{url}/complete", {"code": "abc", "cursor_pos": 4})
    assert status == 422 and "cursor_pos" in error["error"]["message"]
    assert error["error"]["type"] == "invalid_request_error"
    status, error = post(http, f"{url}/inspect", {"code": "abc", "detail_level": 3})
    assert status == 422 and error["error"]["param"] == "detail_level"
    for method, path, body_ in (
        ("POST", "complete", {"code": "x"}),
        ("POST", "inspect", {"code": "x"}),
        ("GET", "variables", None),
    ):
        missing = http.request(
            method, f"{service.server.v1}/containers/cntr_unknown/{path}", json=body_
        )
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
    wait_until(lambda: service.manager.live_count == 1, timeout_s=30)
    for method, path, body_ in (
        ("POST", "complete", {"code": "x"}),
        ("POST", "inspect", {"code": "x"}),
        ("GET", "variables", None),
    ):
        expired = http.request(
            method, f"{service.server.v1}/containers/{doomed.id}/{path}", json=body_
        )
        assert expired.status_code == 404
        assert expired.json()["error"]["code"] == "container_expired"
