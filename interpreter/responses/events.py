"""What a turn does, as the model/tool loop reports it. No wire shapes here: the
Responses API (``wire``) and other front-ends turn these into their own events.

The model writes three kinds of message: reasoning, code for the python tool, and the
answer. Each is reported as started, as deltas while it is written, and done. A code
message is then run: ``ToolRunning`` when the execution starts, ``ToolFinished`` with
what the client is shown of it. ``ToolRefused`` ends a call the turn had no calls left for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["reasoning", "code", "text"]


@dataclass(frozen=True)
class Citation:
    """A mention, in the answer, of a file the turn's code wrote."""

    container_id: str
    file_id: str
    filename: str
    start_index: int
    end_index: int


@dataclass(frozen=True)
class ItemStarted:
    kind: Kind
    #: For code: the container it will run in.
    container_id: str | None = None


@dataclass(frozen=True)
class ItemDelta:
    kind: Kind
    text: str


@dataclass(frozen=True)
class ItemDone:
    kind: Kind
    text: str
    #: For the answer: the files of this turn it mentions.
    citations: tuple[Citation, ...] = ()


@dataclass(frozen=True)
class ToolRunning:
    pass


@dataclass(frozen=True)
class ToolFinished:
    status: Literal["completed", "incomplete", "failed"]
    logs: str
    image_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class ToolRefused:
    """The model asked for another call after the turn's limit: it was not run."""


LoopEvent = ItemStarted | ItemDelta | ItemDone | ToolRunning | ToolFinished | ToolRefused


@dataclass
class Usage:
    """Tokens of one turn, over all its model calls."""

    input: int = 0
    cached: int = 0
    output: int = 0
    reasoning: int = 0


class TurnFailed(Exception):
    """Ends the turn as failed, with a message for the client (not an HTTP error: the
    turn had already started)."""

    def __init__(self, message: str, code: str = "server_error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class TurnIncomplete(Exception):
    """Ends the turn as incomplete: ``max_output_tokens`` or ``max_tool_calls``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
