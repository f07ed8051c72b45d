"""A request's ``messages``: checked, split into what came before and what is new, and
named, so that the next request of the same conversation finds it again.

A Chat Completions client resends the whole conversation each time. Everything up to
and including the last assistant message is what this server answered before; the user
messages after it are the new turn. The earlier part is named by a hash of its user and
assistant texts (system and developer messages are left out: front-ends template them,
with today's date, say), and of the API key, so that a conversation is only ever found
by its own key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from openai_harmony import Message

from interpreter.errors import InvalidRequest
from model_runner.harmony import final_message, user_message

ROLES = ("system", "developer", "user", "assistant")
#: Content part types read as text, by role.
TEXT_PARTS = {"assistant": ("text", "refusal")}


@dataclass
class Transcript:
    #: System and developer texts, joined: harmony has one developer message, first.
    instructions: str
    #: (role, text) of each user and assistant message up to the last assistant one.
    earlier: list[tuple[str, str]] = field(default_factory=list)
    #: The texts of the user messages after it: this turn's input.
    new: list[str] = field(default_factory=list)


def read_messages(messages: list[dict[str, Any]]) -> Transcript:
    """The request's messages; a 400 naming the first field this server cannot take."""
    instructions: list[str] = []
    said: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        role = message.get("role")
        if role not in ROLES:
            hint = (
                " Tool results are not sent by clients here: the server runs its code "
                "interpreter itself."
                if role in ("tool", "function")
                else ""
            )
            raise InvalidRequest(
                f"Message role {role!r} is not supported.{hint}", param=f"{param}.role"
            )
        for key in ("tool_calls", "function_call", "audio"):
            if message.get(key):
                raise InvalidRequest(
                    f"Assistant messages with {key} are not supported.", param=f"{param}.{key}"
                )
        text = _text_of(message.get("content"), role, param)
        if role in ("system", "developer"):
            if text:
                instructions.append(text)
        else:
            said.append((role, text))
    if not said or said[-1][0] != "user":
        last = len(messages) - 1
        raise InvalidRequest(
            "The last message must be the user's: this server answers it.",
            param=f"messages[{last}].role",
        )
    split = max((i + 1 for i, (role, _) in enumerate(said) if role == "assistant"), default=0)
    return Transcript(
        instructions="\n\n".join(instructions),
        earlier=said[:split],
        new=[text for _, text in said[split:]],
    )


def _text_of(content: Any, role: str, param: str) -> str:
    if content is None and role == "assistant":
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(
            "Message content must be a string or a list of parts.", param=f"{param}.content"
        )
    allowed = TEXT_PARTS.get(role, ("text",))
    parts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else type(part).__name__
        if kind not in allowed:
            raise InvalidRequest(
                f"Content part type {kind!r} is not supported in a {role} message; send text.",
                param=f"{param}.content[{index}].type",
            )
        parts.append(str(part.get(kind, "") if kind == "refusal" else part.get("text", "")))
    return "".join(parts)


def conversation_key(owner: str | None, said: list[tuple[str, str]]) -> str:
    """The name of a conversation so far. Whitespace at the ends of a message does not
    count: front-ends trim what they stored."""
    material = json.dumps([owner, [[role, text.strip()] for role, text in said]])
    return "conversation:" + hashlib.sha256(material.encode()).hexdigest()


def affinity_key(owner: str | None, affinity: str) -> str:
    return "affinity:" + hashlib.sha256(json.dumps([owner, affinity]).encode()).hexdigest()


def plain_history(said: list[tuple[str, str]]) -> list[Message]:
    """Earlier messages as harmony when this server does not know them (another server
    answered them, or its store was cleared): the answers as final messages."""
    return [user_message(text) if role == "user" else final_message(text) for role, text in said]
