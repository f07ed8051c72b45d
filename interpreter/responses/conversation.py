"""Between the Responses API's items and harmony messages, and from sandbox results to
what the model and the client are shown."""

from __future__ import annotations

import re
from typing import Any

from openai_harmony import Message, Role

from interpreter.errors import InvalidRequest
from interpreter.sandboxes.outputs import (
    DisplayOutput,
    ErrorOutput,
    ExecutionResult,
    StreamOutput,
)
from model_runner.harmony import (
    ToolObservation,
    final_message,
    python_call_message,
    reasoning_message,
    tool_output_message,
    user_message,
)

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TRACEBACK_TAIL_LINES = 12


def _text_of(content: Any, param: str) -> str:
    """A message's content: a string, or a list of input_text/output_text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in (
                "input_text",
                "output_text",
                "text",
                "reasoning_text",
            ):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise InvalidRequest(
                    f"Content part type {kind!r} is not supported; send text.",
                    param=f"{param}.content[{index}]",
                )
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise InvalidRequest("Message content must be a string or a list of parts.", param=param)


def input_to_messages(items: str | list[dict[str, Any]]) -> tuple[list[Message], list[str]]:
    """Harmony messages for the request's ``input``, and any system/developer texts
    (which join the instructions: harmony has one developer message, at the start)."""
    if isinstance(items, str):
        return [user_message(items)], []
    messages: list[Message] = []
    extra_instructions: list[str] = []
    for index, item in enumerate(items):
        param = f"input[{index}]"
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            text = _text_of(item.get("content", ""), param)
            if role == "user":
                messages.append(user_message(text))
            elif role == "assistant":
                messages.append(final_message(text))
            elif role in ("system", "developer"):
                extra_instructions.append(text)
            else:
                raise InvalidRequest(f"Unknown message role {role!r}.", param=f"{param}.role")
        elif kind == "reasoning":
            text = "".join(
                str(part.get("text", ""))
                for part in item.get("content") or []
                if isinstance(part, dict)
            )
            if text:
                messages.append(reasoning_message(text))
        elif kind == "code_interpreter_call":
            messages.append(python_call_message(str(item.get("code") or "")))
            logs = [
                str(o.get("logs", ""))
                for o in item.get("outputs") or []
                if isinstance(o, dict) and o.get("type") == "logs"
            ]
            messages.append(tool_output_message("\n".join(logs)))
        else:
            raise InvalidRequest(
                f"Input item type {kind!r} is not supported.", param=f"{param}.type"
            )
    return messages, extra_instructions


def split_turns(history: list[Message]) -> list[list[Message]]:
    """Earlier turns, each from a user's message up to the next one. Anything before the
    first user message (cells a user ran by hand, say) belongs to the first turn."""
    turns: list[list[Message]] = []
    for message in history:
        if message.author.role == Role.USER or not turns:
            turns.append([])
        turns[-1].append(message)
    return turns


def observe(result: ExecutionResult, new_files: list[str]) -> ToolObservation:
    """What the model is told of an execution."""
    text_parts: list[str] = []
    images = 0
    error = None
    for output in result.outputs:
        if isinstance(output, StreamOutput):
            text_parts.append(output.text)
        elif isinstance(output, DisplayOutput):
            if any(mime.startswith("image/") for mime in output.data):
                images += 1
            elif "text/plain" in output.data:
                text_parts.append(output.data["text/plain"] + "\n")
        elif isinstance(output, ErrorOutput):
            error = error_text(output)
    return ToolObservation(
        text="".join(text_parts),
        images=images,
        error=error,
        new_files=tuple(new_files),
        truncated=result.truncated,
        timed_out_after_s=round(result.duration_s, 1) if result.status == "timeout" else None,
        notice=result.notice,
    )


def error_text(error: ErrorOutput) -> str:
    """The end of a traceback, without colour codes: enough to fix the code."""
    lines = ANSI.sub("", "\n".join(error.traceback)).splitlines()
    tail = [line for line in lines if line.strip()][-TRACEBACK_TAIL_LINES:]
    summary = f"{error.ename}: {error.evalue}"
    # A traceback usually ends with its own summary line; a SyntaxError's ends with the
    # message alone while evalue adds the file and line: one of the two is enough.
    if not tail or not tail[-1].strip().startswith(f"{error.ename}:"):
        tail.append(summary)
    return "\n".join(tail)


def logs_of(result: ExecutionResult) -> str:
    """The ``logs`` output a client sees: what the code printed, results, errors."""
    parts: list[str] = []
    for output in result.outputs:
        if isinstance(output, StreamOutput):
            parts.append(output.text)
        elif isinstance(output, DisplayOutput):
            if "text/plain" in output.data and not any(m.startswith("image/") for m in output.data):
                parts.append(output.data["text/plain"] + "\n")
        elif isinstance(output, ErrorOutput):
            parts.append(error_text(output) + "\n")
    return "".join(parts)


def trim_to_tokens(text: str, max_tokens: int, encode: Any, decode: Any) -> str:
    """Keep the head and tail of a long tool output within ``max_tokens``."""
    tokens = encode(text)
    if len(tokens) <= max_tokens:
        return text
    keep = max_tokens // 2
    omitted = len(tokens) - 2 * keep
    return (
        decode(tokens[:keep])
        + f"\n[... {omitted} tokens of output omitted ...]\n"
        + decode(tokens[-keep:])
    )
