"""The ``POST /v1/chat/completions`` request this server accepts. Fields OpenAI defines
that do not apply here are accepted and ignored, so existing clients keep working; the
ones that would change what a client gets back (client-side tools, several choices) are
refused with a 400 naming them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from interpreter.errors import InvalidRequest

#: The metadata key that names a conversation's container (see ``serving``).
SESSION_METADATA_KEY = "session_id"


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=16)
    max_completion_tokens: int | None = Field(default=None, ge=16)
    seed: int | None = None
    n: int = 1
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    user: str | None = Field(default=None, max_length=256)
    metadata: dict[str, str] | None = None
    prompt_cache_key: str | None = Field(default=None, max_length=256)
    tools: list[dict[str, Any]] | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and len(value) > 16:
            raise ValueError("metadata holds at most 16 keys")
        return value

    def check(self) -> None:
        """A 400 naming what this server does not do."""
        if self.n != 1:
            raise InvalidRequest("Only n=1 is supported.", param="n")
        if self.tools:
            raise InvalidRequest(
                "Client-side tools are not supported: this server runs its own code "
                "interpreter for the model, and its code and outputs come back in the "
                "message content.",
                param="tools",
            )

    @property
    def max_output_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage
