"""``RunnerGenerator``: a model served by this project's own runner
(``python -m model_runner serve``), over its native ``/v1/generate`` (see
``model_runner.server.native`` for the wire format).

The runner answers with the generator's own declarations (name, concurrency, default
temperature, context) and always speaks o200k_harmony ids (a vocabulary-subset
checkpoint maps them inside the runner). Closing a stream early closes the HTTP
response; the runner cancels the generation when it sees the disconnect.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from model_runner.engines.remote import RemoteGenerator, json_or_none, sync_json
from model_runner.errors import ModelRunnerError
from model_runner.generator import GenerationRequest, GenerationUsage
from model_runner.server.native import GenerateBody, error_from_body


class RunnerGenerator(RemoteGenerator):
    engine = "model runner"

    def _probe(self, client: httpx.Client) -> None:
        info: dict[str, Any] = sync_json(client.get("/v1/model"))
        self.adopt_name(info.get("name"))
        self.concurrency = int(info.get("concurrency") or self.concurrency)
        self.adopt_temperature(info.get("default_temperature"))
        context = info.get("max_context")
        self.max_context = int(context) if context else None

    async def health(self) -> dict[str, Any]:
        """The runner's ``/healthz`` answer (raises ``httpx.HTTPError`` if it has none)."""
        response = await self._http().get("/healthz")
        body: dict[str, Any] = sync_json(response)
        return body

    async def _stream(
        self, request: GenerationRequest, max_tokens: int, usage: GenerationUsage
    ) -> AsyncIterator[int]:
        body = GenerateBody.from_request(request).model_dump()
        body["max_tokens"] = max_tokens
        async with self._http().stream("POST", "/v1/generate", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                raise error_from_body(json_or_none(response.text), f"HTTP {response.status_code}")
            async for line in response.aiter_lines():
                if not line:
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ModelRunnerError(
                        f"the runner sent a line that is not JSON: {exc}"
                    ) from exc
                if "token" in data:
                    yield int(data["token"])
                elif "prompt_tokens" in data:
                    usage.prompt_tokens = int(data["prompt_tokens"])
                    usage.cached_tokens = int(data["cached_tokens"])
                    self.adopt_name(data.get("model"))
                elif data.get("done"):
                    return
                elif "error" in data:
                    raise error_from_body(data, "generation failed")
        raise self.cut_short()
