"""Chat Completions' wire shapes, as the ``openai`` SDK's own chat types, and the
assistant's content written from the loop's events.

Reasoning goes out as ``reasoning_content`` (the field vLLM and others use; the SDK's
types keep fields they do not declare). Code and its outputs go into the content as
fenced Markdown, images as links this server serves, so any front-end shows them.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from openai.types.completion_usage import (
    CompletionTokensDetails,
    CompletionUsage,
    PromptTokensDetails,
)

from interpreter.responses.events import (
    ItemDelta,
    ItemDone,
    ItemStarted,
    LoopEvent,
    ToolFinished,
    Usage,
)

FinishReason = Literal["stop", "length"]
BACKTICKS = re.compile(r"`{3,}")


def new_completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(16)}"


@dataclass(frozen=True)
class Delta:
    content: str = ""
    reasoning: str = ""


class ContentWriter:
    """The assistant's message as it is written: Markdown content and reasoning."""

    def __init__(self) -> None:
        self.content = ""
        self.reasoning = ""
        self._in_code = False

    def apply(self, event: LoopEvent) -> Delta | None:
        if isinstance(event, ItemStarted):
            if event.kind == "reasoning":
                return self._reason("\n\n" if self.reasoning else "")
            # Code streams into its block before it is complete, so the fence is three
            # backticks; outputs, known whole, get a fence longer than anything in them.
            self._in_code = event.kind == "code"
            opening = "```python\n" if self._in_code else ""
            return self._write(self._paragraph_break() + opening)
        if isinstance(event, ItemDelta):
            if event.kind == "reasoning":
                return self._reason(event.text)
            return self._write(event.text)
        if isinstance(event, ItemDone) and event.kind == "code":
            return self.finish()
        if isinstance(event, ToolFinished):
            return self._write(self._outputs(event))
        return None

    def finish(self) -> Delta | None:
        """Close a code block left open (the model was cut off while writing it)."""
        if not self._in_code:
            return None
        self._in_code = False
        return self._write(("" if self.content.endswith("\n") else "\n") + "```\n")

    def _outputs(self, finished: ToolFinished) -> str:
        parts = []
        if finished.logs:
            logs = finished.logs if finished.logs.endswith("\n") else finished.logs + "\n"
            # A fence longer than any run of backticks in the output, so none closes it.
            longest = max((len(m) for m in BACKTICKS.findall(logs)), default=2)
            fence = "`" * max(3, longest + 1)
            parts.append(f"\n{fence}text\n{logs}{fence}\n")
        if finished.status == "incomplete":
            parts.append("\n*The execution was stopped at its time limit.*\n")
        parts += [f"\n![image {n}]({url})\n" for n, url in enumerate(finished.image_urls, 1)]
        return "".join(parts)

    def _paragraph_break(self) -> str:
        if not self.content:
            return ""
        return "\n" if self.content.endswith("\n") else "\n\n"

    def _write(self, text: str) -> Delta | None:
        if not text:
            return None
        self.content += text
        return Delta(content=text)

    def _reason(self, text: str) -> Delta | None:
        if not text:
            return None
        self.reasoning += text
        return Delta(reasoning=text)


def usage_of(usage: Usage) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=usage.input,
        completion_tokens=usage.output,
        total_tokens=usage.input + usage.output,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=usage.cached),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=usage.reasoning),
    )


def chunk(
    completion_id: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None,
    *,
    finish_reason: FinishReason | None = None,
    usage: Usage | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``; ``delta`` None makes the usage chunk (no choices)."""
    choices = []
    if delta is not None:
        choices.append(
            ChunkChoice(index=0, delta=ChoiceDelta(**delta), finish_reason=finish_reason)
        )
    body = ChatCompletionChunk(
        id=completion_id,
        object="chat.completion.chunk",
        created=created,
        model=model,
        choices=choices,
        usage=usage_of(usage) if usage is not None else None,
    )
    return body.model_dump(mode="json", exclude_none=True)


def delta_of(delta: Delta) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if delta.content:
        fields["content"] = delta.content
    if delta.reasoning:
        fields["reasoning_content"] = delta.reasoning
    return fields


def completion(
    completion_id: str,
    created: int,
    model: str,
    writer: ContentWriter,
    finish_reason: FinishReason,
    usage: Usage,
) -> dict[str, Any]:
    message = ChatCompletionMessage(role="assistant", content=writer.content)
    if writer.reasoning:
        message.reasoning_content = writer.reasoning  # type: ignore[attr-defined]
    body = ChatCompletion(
        id=completion_id,
        object="chat.completion",
        created=created,
        model=model,
        choices=[Choice(index=0, message=message, finish_reason=finish_reason)],
        usage=usage_of(usage),
    )
    return body.model_dump(mode="json", exclude_none=True)
