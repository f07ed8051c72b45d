"""``RemoteGenerator``: the part every model served over HTTP shares.

A subclass speaks one engine's wire format: ``_probe`` learns what the engine serves
(its model name, its context, that its vocabulary is harmony's) and ``_stream`` sends
one generation and yields its token ids. This base makes the engine's answers into the
typed errors the service handles whichever model it runs:

- an engine that does not answer at start-up fails the start with one sentence
  (``connect``), rather than every later request;
- a connection lost or a stream cut short mid-generation is ``ModelUnavailable``;
- a prompt longer than the engine's context is ``InvalidGenerationRequest``, caught
  here before anything is sent when the context is known;
- a vocabulary that is not o200k_harmony is ``ModelMismatch`` at start-up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Self

import httpx

from model_runner.errors import (
    InvalidGenerationRequest,
    ModelMismatch,
    ModelRunnerError,
    ModelUnavailable,
)
from model_runner.generator import GenerationRequest, GenerationStream, GenerationUsage
from model_runner.harmony import load_encoding

log = logging.getLogger(__name__)

#: Connecting should be quick; a generation may queue behind others and prefill long
#: contexts before its first token, so reads wait without limit.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=None, write=30.0, pool=None)

#: How many generations the service sends an engine at once, unless told otherwise.
#: Engines batch (vLLM, SGLang and llama.cpp all do), so more than one.
DEFAULT_CONCURRENCY = 16

#: Text whose tokens prove a vocabulary is o200k_harmony: special tokens, words, digits.
VOCABULARY_PROBE = (
    "<|start|>user<|message|>What is 1234 * 5678? Plot sin(x) from 0 to 10.<|end|>"
    "<|start|>assistant<|channel|>analysis to=python code<|message|>print(1)<|call|>"
)


def expected_probe_tokens() -> list[int]:
    return list(load_encoding().encode(VOCABULARY_PROBE, allowed_special="all"))


class RemoteGenerator:
    """A ``Generator`` whose model runs in another process, reached at ``base_url``.

    ``name`` is what ``Response.model`` says (the engine's model id once probed);
    ``concurrency`` is how many generations the service sends at once;
    ``max_context`` is the engine's context, when known.
    """

    #: The engine's name, for messages: "vLLM", "llama.cpp", ...
    engine: ClassVar[str] = "model server"

    def __init__(
        self,
        base_url: str,
        *,
        name: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        default_temperature: float | None = None,
        max_context: int | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        uds: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name or f"{type(self).__name__}:{httpx.URL(self.base_url).netloc.decode()}"
        self.concurrency = concurrency
        # gpt-oss's recommended sampling, unless given here or the engine says otherwise.
        self.default_temperature = 1.0 if default_temperature is None else default_temperature
        self.max_context = max_context
        self._fixed_name = name is not None
        self._fixed_temperature = default_temperature is not None
        self._timeout = timeout
        # A unix socket to reach the engine by, instead of the URL's host and port.
        self._uds = uds
        # Made on first use, inside the event loop that will run it.
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def connect(cls, base_url: str, *, probe_timeout_s: float = 10.0, **options: Any) -> Self:
        """A generator for the engine at ``base_url``, probed now: it must answer and
        serve a harmony model. Blocks briefly: call it at start-up."""
        generator = cls(base_url, **options)
        try:
            with httpx.Client(
                base_url=generator.base_url,
                timeout=probe_timeout_s,
                transport=httpx.HTTPTransport(uds=generator._uds) if generator._uds else None,
            ) as client:
                generator._probe(client)
        except httpx.HTTPError as exc:
            raise ModelUnavailable(
                f"No {cls.engine} answers at {generator.base_url} ({type(exc).__name__}: "
                f"{exc}); start it, or set INTERPRETER_MODEL to a model that runs."
            ) from exc
        return generator

    # -- what subclasses provide ----------------------------------------------------------

    def _probe(self, client: httpx.Client) -> None:
        """Learn the model's name and context from the engine; check its vocabulary."""

    async def _stream(
        self, request: GenerationRequest, max_tokens: int, usage: GenerationUsage
    ) -> AsyncIterator[int]:
        """One generation's token ids, filling ``usage`` as they come."""
        raise NotImplementedError
        yield

    # -- shared ---------------------------------------------------------------------------

    def check_vocabulary(self, tokens: list[int]) -> None:
        """Compare the engine's tokens for ``VOCABULARY_PROBE`` with harmony's."""
        expected = expected_probe_tokens()
        if tokens != expected:
            raise ModelMismatch(
                f"The {self.engine} model at {self.base_url} does not use gpt-oss's "
                f"o200k_harmony vocabulary: it reads a harmony prompt as {tokens[:12]}..., "
                f"where harmony's tokens are {expected[:12]}...; serve a gpt-oss model."
            )

    def adopt_name(self, name: object) -> None:
        if not self._fixed_name and isinstance(name, str) and name:
            self.name = name

    def adopt_temperature(self, temperature: object) -> None:
        """The engine's own default, as its operator started it (``--temp``)."""
        if not self._fixed_temperature and isinstance(temperature, int | float):
            self.default_temperature = float(temperature)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            transport = httpx.AsyncHTTPTransport(uds=self._uds) if self._uds else None
            self._client = httpx.AsyncClient(
                base_url=self.base_url, timeout=self._timeout, transport=transport
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def generate(self, request: GenerationRequest) -> GenerationStream:
        usage = GenerationUsage(prompt_tokens=len(request.prompt_tokens))
        return GenerationStream(self._guarded(request, usage), usage)

    async def _guarded(
        self, request: GenerationRequest, usage: GenerationUsage
    ) -> AsyncIterator[int]:
        prompt = len(request.prompt_tokens)
        if not prompt:
            raise InvalidGenerationRequest("the prompt is empty")
        max_tokens = request.max_tokens
        if self.max_context is not None:
            if prompt >= self.max_context:
                raise InvalidGenerationRequest(
                    f"the prompt has {prompt} tokens; the {self.engine} model's context is "
                    f"{self.max_context}"
                )
            # Engines refuse prompt + max_tokens past their context: ask for what fits.
            max_tokens = min(max_tokens, self.max_context - prompt)
        try:
            async for token in self._stream(request, max_tokens, usage):
                yield token
        except httpx.HTTPError as exc:
            raise ModelUnavailable(
                f"the {self.engine} at {self.base_url} went away: {type(exc).__name__}: {exc}"
            ) from exc

    def error_of(self, status: int, body: Any, fallback: str) -> ModelRunnerError:
        """The typed error an engine's error answer stands for."""
        message = fallback
        if isinstance(body, dict):
            error = body.get("error", body)
            if isinstance(error, dict):
                message = str(error.get("message") or fallback)
            elif isinstance(error, str):
                message = error
        text = f"the {self.engine} refused the request: {message}"
        if status == 400 or "context" in message.lower():
            return InvalidGenerationRequest(text)
        return ModelUnavailable(f"the {self.engine} answered HTTP {status}: {message}")

    def cut_short(self) -> ModelUnavailable:
        return ModelUnavailable(f"the {self.engine} at {self.base_url} cut the stream short")


def json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


async def raise_for_answer(generator: RemoteGenerator, response: httpx.Response) -> None:
    """Turn a non-200 answer into the typed error it stands for."""
    if response.status_code != 200:
        await response.aread()
        raise generator.error_of(
            response.status_code,
            json_or_none(response.text),
            f"HTTP {response.status_code}: {response.text[:200]}",
        )


async def sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The ``data:`` payloads of a server-sent event stream (comments and blank lines
    are keepalives)."""
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            yield line[5:].strip()


def sync_json(response: httpx.Response) -> Any:
    response.raise_for_status()
    return response.json()


def first_model(models: Any) -> dict[str, Any]:
    """The first entry of an OpenAI-style ``/v1/models`` list."""
    data = models.get("data") if isinstance(models, dict) else None
    if not data or not isinstance(data[0], dict):
        raise ModelUnavailable(f"unexpected /v1/models answer: {str(models)[:200]}")
    entry: dict[str, Any] = data[0]
    return entry
