"""Kernel output as typed data.

A user's exception is an output (``ErrorOutput``), not a server error. Outputs arrive in
order and are either collected into an ``ExecutionResult`` or streamed one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class StreamOutput:
    name: Literal["stdout", "stderr"]
    text: str
    type: Literal["stream"] = "stream"


@dataclass(frozen=True)
class DisplayOutput:
    """``display_data`` or, with ``execution_count`` set, an ``execute_result``.

    ``data`` maps MIME types to their payload: text as-is, binary (``image/png``) as the
    base64 text the kernel sent.
    """

    data: dict[str, str]
    execution_count: int | None = None
    type: Literal["display"] = "display"

    @property
    def is_result(self) -> bool:
        return self.execution_count is not None


@dataclass(frozen=True)
class ErrorOutput:
    ename: str
    evalue: str
    traceback: list[str]
    type: Literal["error"] = "error"


@dataclass(frozen=True)
class ClearOutput:
    """The code asked to clear what it had shown (progress bars do this)."""

    type: Literal["clear"] = "clear"


Output = StreamOutput | DisplayOutput | ErrorOutput | ClearOutput

ExecutionStatus = Literal["ok", "error", "timeout", "died"]


@dataclass
class ExecutionResult:
    """Everything one execution produced.

    ``status`` is ``ok`` or ``error`` (the code raised); ``timeout`` when the deadline
    passed and the kernel was interrupted; ``died`` when the kernel process died (out of
    memory, ``os._exit``). ``notice`` says when earlier state was lost before this ran.
    """

    status: ExecutionStatus
    outputs: list[Output] = field(default_factory=list)
    execution_count: int | None = None
    duration_s: float = 0.0
    truncated: bool = False
    kernel_restarted: bool = False
    notice: str | None = None
    # Why a kernel was replaced during or just before this execution ("died",
    # "timeout"); None when nothing was, or when an earlier result already said so.
    restart_reason: str | None = None

    @property
    def stdout(self) -> str:
        return "".join(
            o.text for o in self.outputs if isinstance(o, StreamOutput) and o.name == "stdout"
        )

    @property
    def stderr(self) -> str:
        return "".join(
            o.text for o in self.outputs if isinstance(o, StreamOutput) and o.name == "stderr"
        )

    @property
    def error(self) -> ErrorOutput | None:
        return next((o for o in self.outputs if isinstance(o, ErrorOutput)), None)

    def images(self, mime: str = "image/png") -> list[str]:
        return [
            o.data[mime] for o in self.outputs if isinstance(o, DisplayOutput) and mime in o.data
        ]
