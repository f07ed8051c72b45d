"""The narrow interface between the service and a model.

A ``Generator`` takes prompt tokens and streams completion tokens. The service holds one
injected object of this shape; the transformers backend, the HTTP client of a served
runner, and the tests' scripted double all implement it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate from. ``stop_tokens`` end the stream and are yielded last."""

    prompt_tokens: Sequence[int]
    max_tokens: int
    stop_tokens: frozenset[int]
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    # Conversations sharing a key share a prefix cache entry (``prompt_cache_key``).
    cache_key: str | None = None
    # A background generation gives way to the start of interactive ones (the built-in
    # runner pauses it for their first steps; engines that cannot ignore it).
    background: bool = False


@dataclass
class GenerationUsage:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class GenerationStream:
    """An async iterator of token ids, with usage and finish reason filled as it runs.

    ``usage.cached_tokens`` is known once the first token arrives. A stream that ends
    on a stop token finished; one that ends without it ran out of ``max_tokens``.
    Closing the stream early (``aclose``) cancels generation.
    """

    tokens: AsyncIterator[int]
    usage: GenerationUsage = field(default_factory=GenerationUsage)

    def __aiter__(self) -> AsyncIterator[int]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[int]:
        try:
            async for token in self.tokens:
                self.usage.completion_tokens += 1
                yield token
        finally:
            # A consumer that breaks out of its loop abandons this iterator; closing the
            # source here (when the loop finalizes it) stops the generation behind it.
            await self.aclose()

    async def aclose(self) -> None:
        closer = getattr(self.tokens, "aclose", None)
        if closer is not None:
            await closer()


class Generator(Protocol):
    """Anything that can continue a token sequence.

    Besides ``generate``, a generator declares what the service needs to drive it well:
    how many generations it serves at once (the service admits that many and queues the
    rest, interactive requests first), the sampling temperature its model is meant to
    run at when a request names none, and the longest prompt plus completion it takes.
    """

    @property
    def name(self) -> str:
        """A short name for ``Response.model``."""

    @property
    def concurrency(self) -> int:
        """Generations served at once: a batching runner's batch, a remote engine's slots."""

    @property
    def default_temperature(self) -> float:
        """The temperature a request gets when it names none."""

    @property
    def max_context(self) -> int | None:
        """Prompt plus completion tokens the model takes; None when unknown."""

    def generate(self, request: GenerationRequest) -> GenerationStream: ...
