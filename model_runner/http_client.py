"""``HTTPGenerator``: the ``Generator`` of a model runner served over HTTP.

The service holds it like any local generator. Closing its stream early closes the HTTP
response, and the server cancels the generation when it sees the disconnect. Errors
come back as the same typed ``model_runner.errors`` a local generator raises.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from model_runner.errors import ModelRunnerError, ModelUnavailable
from model_runner.generator import GenerationRequest, GenerationStream, GenerationUsage
from model_runner.protocol import GenerateBody, error_from_body

log = logging.getLogger(__name__)

#: Connecting should be quick; a generation may queue behind others and prefill long
#: contexts before its first line, so reads wait without limit by default.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=None, write=30.0, pool=None)


class HTTPGenerator:
    """Talks to ``python -m model_runner serve`` at ``base_url``.

    ``name`` is the served model's name: given, or fetched with ``connect``, and in any
    case updated from each generation's first line. Call ``aclose`` when done with it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        name: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name or f"remote:{urlsplit(self.base_url).netloc}"
        self._timeout = timeout
        self._transport = transport
        # Made on first use, inside the event loop that will run it.
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def connect(
        cls, base_url: str, *, connect_timeout_s: float = 5.0, **options: Any
    ) -> HTTPGenerator:
        """An ``HTTPGenerator`` named after what the server serves. Blocks briefly (call
        it at start-up); a server not up yet is not an error, only logged, since the
        name also arrives with every generation."""
        generator = cls(base_url, **options)
        if options.get("name") is None:
            try:
                response = httpx.get(f"{generator.base_url}/v1/model", timeout=connect_timeout_s)
                response.raise_for_status()
                generator.name = str(response.json()["name"])
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                log.warning("model runner at %s did not answer (%s); will retry", base_url, exc)
        return generator

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url, timeout=self._timeout, transport=self._transport
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def health(self) -> dict[str, Any]:
        """The server's ``/healthz`` answer; raises ``ModelUnavailable`` if it has none."""
        try:
            response = await self._http().get("/healthz")
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body
        except (httpx.HTTPError, ValueError) as exc:
            raise ModelUnavailable(f"model runner at {self.base_url}: {exc}") from exc

    def generate(self, request: GenerationRequest) -> GenerationStream:
        usage = GenerationUsage()
        return GenerationStream(self._stream(request, usage), usage)

    async def _stream(
        self, request: GenerationRequest, usage: GenerationUsage
    ) -> AsyncIterator[int]:
        body = GenerateBody.from_request(request).model_dump()
        try:
            async with self._http().stream("POST", "/v1/generate", json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise error_from_body(_json_or_none(response.text), _describe(response))
                async for line in response.aiter_lines():
                    if not line:
                        continue
                    data = json.loads(line)
                    if "token" in data:
                        yield int(data["token"])
                    elif "prompt_tokens" in data:
                        usage.prompt_tokens = int(data["prompt_tokens"])
                        usage.cached_tokens = int(data["cached_tokens"])
                        self.name = str(data.get("model") or self.name)
                    elif data.get("done"):
                        return
                    elif "error" in data:
                        raise error_from_body(data, "generation failed")
        except httpx.HTTPError as exc:
            raise ModelUnavailable(f"model runner at {self.base_url}: {exc!r}") from exc
        except json.JSONDecodeError as exc:
            raise ModelRunnerError(f"model runner sent a line that is not JSON: {exc}") from exc
        raise ModelUnavailable(f"model runner at {self.base_url} cut the stream short")


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _describe(response: httpx.Response) -> str:
    return f"model runner answered HTTP {response.status_code}: {response.text[:200]}"
