"""What a session has executed, in order: the source of its notebook.

Kept in memory with the session, bounded by cells and by bytes so that a long-lived
session printing a lot cannot grow without end; the oldest cells go first and are
counted, so an export can say that earlier cells are missing. Not persisted: a session
re-adopted after a restart starts a new history.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from interpreter.sandboxes.outputs import (
    DisplayOutput,
    ErrorOutput,
    ExecutionResult,
    StreamOutput,
)

MAX_CELLS = 1000
MAX_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ExecutedCell:
    code: str
    result: ExecutionResult

    @property
    def size(self) -> int:
        size = len(self.code)
        for output in self.result.outputs:
            if isinstance(output, StreamOutput):
                size += len(output.text)
            elif isinstance(output, DisplayOutput):
                size += sum(len(v) for v in output.data.values())
            elif isinstance(output, ErrorOutput):
                size += len(output.evalue) + sum(len(line) for line in output.traceback)
        return size


class ExecutionHistory:
    def __init__(self, max_cells: int = MAX_CELLS, max_bytes: int = MAX_BYTES) -> None:
        self._cells: deque[ExecutedCell] = deque()
        self._bytes = 0
        self._max_cells = max_cells
        self._max_bytes = max_bytes
        #: Cells dropped to stay within the bounds, oldest first.
        self.dropped = 0

    def add(self, code: str, result: ExecutionResult) -> None:
        cell = ExecutedCell(code, result)
        self._cells.append(cell)
        self._bytes += cell.size
        # The newest cell always stays, even one larger than the whole budget.
        while len(self._cells) > 1 and (
            len(self._cells) > self._max_cells or self._bytes > self._max_bytes
        ):
            self._bytes -= self._cells.popleft().size
            self.dropped += 1

    def cells(self) -> list[ExecutedCell]:
        return list(self._cells)
