"""Building notebooks with ``nbformat``: every cell and the whole notebook are validated
against the v4 schema before they leave.

A container's notebook is its execution history: each execution a code cell with its
outputs and execution count. A response conversation's notebook walks the chain of
``previous_response_id`` from its first response: the user's prompts and the model's
answers become Markdown cells, the model's code becomes code cells with the outputs the
store kept of each execution (images included), and cells a person ran by hand and sent
with a message (``code_interpreter_call`` input items) become code cells with their logs.
The model's reasoning is left out: a notebook is for reading the work, not the thoughts.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from interpreter.errors import NotFound
from interpreter.responses.store import ResponseStore, StoredResponse
from interpreter.sandboxes.outputs import (
    DisplayOutput,
    ErrorOutput,
    ExecutionResult,
    StreamOutput,
)
from interpreter.sessions.history import MAX_BYTES, MAX_CELLS, ExecutedCell
from interpreter.sessions.manager import Session

MEDIA_TYPE = "application/x-ipynb+json"
#: Responses followed back from the one asked for; a longer chain is cut with a note.
MAX_CHAIN = 1000

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
LANGUAGE_INFO = {"name": "python", "file_extension": ".py", "mimetype": "text/x-python"}


def _is_json_type(mime: str) -> bool:
    return mime == "application/json" or mime.endswith("+json")


def outputs_of(result: ExecutionResult) -> list[NotebookNode]:
    outputs = []
    for output in result.outputs:
        if isinstance(output, StreamOutput):
            outputs.append(new_output("stream", name=output.name, text=output.text))
        elif isinstance(output, DisplayOutput):
            # The sandbox keeps JSON-valued types as JSON text; a notebook holds them as JSON.
            data = {
                mime: json.loads(value) if _is_json_type(mime) else value
                for mime, value in output.data.items()
            }
            if output.is_result:
                outputs.append(
                    new_output("execute_result", data, execution_count=output.execution_count)
                )
            else:
                outputs.append(new_output("display_data", data))
        elif isinstance(output, ErrorOutput):
            outputs.append(
                new_output(
                    "error",
                    ename=output.ename,
                    evalue=output.evalue,
                    traceback=list(output.traceback),
                )
            )
    return outputs


def code_cell(cell: ExecutedCell) -> NotebookNode:
    return new_code_cell(
        cell.code,
        execution_count=cell.result.execution_count,
        outputs=outputs_of(cell.result),
    )


def _logged_code_cell(code: str, outputs: list[Any] | None) -> NotebookNode:
    """A code cell from a ``code_interpreter_call`` item: its logs are all there is."""
    logs = "".join(
        str(o.get("logs", ""))
        for o in outputs or []
        if isinstance(o, dict) and o.get("type") == "logs"
    )
    cell_outputs = [new_output("stream", name="stdout", text=logs)] if logs else []
    return new_code_cell(code, outputs=cell_outputs)


def _said(role: str, text: str) -> NotebookNode:
    title = "User" if role == "user" else "Assistant"
    return new_markdown_cell(f"**{title}**\n\n{text}", metadata={"role": role})


def _note(text: str) -> NotebookNode:
    return new_markdown_cell(f"*{text}*")


def _write(cells: list[NotebookNode], title: str) -> str:
    notebook = new_notebook(
        cells=cells,
        metadata={"kernelspec": KERNELSPEC, "language_info": LANGUAGE_INFO, "title": title},
    )
    nbformat.validate(notebook)
    return str(nbformat.writes(notebook, version=4))


async def container_notebook(session: Session) -> str:
    """The container's executed cells in order, as ``.ipynb`` text."""
    executed = session.history.cells()  # taken now: later executions are not included
    dropped = session.history.dropped

    def build() -> str:
        cells = []
        if dropped:
            cells.append(
                _note(
                    f"{dropped} earlier cells are not included: a container keeps its latest "
                    f"{MAX_CELLS} cells, up to {MAX_BYTES // 2**20} MiB of code and output."
                )
            )
        cells += [code_cell(cell) for cell in executed]
        return _write(cells, f"Container {session.id}")

    # Validation is CPU work that grows with the notebook: off the event loop.
    return await asyncio.to_thread(build)


async def conversation_notebook(store: ResponseStore, response_id: str, owner: str | None) -> str:
    """The conversation that ends with ``response_id``, from its first turn, as
    ``.ipynb`` text. Raises ``NotFound`` for an unknown response."""
    chain = [await store.get(response_id, owner)]
    cut = False
    while previous_id := chain[-1].body.get("previous_response_id"):
        if len(chain) >= MAX_CHAIN:
            cut = True
            break
        try:
            chain.append(await store.get(previous_id, owner))
        except NotFound:
            cut = True  # an earlier turn was deleted
            break
    chain.reverse()
    executions = {r.id: await store.executions(r.id) for r in chain}

    def build() -> str:
        cells = [_note("Earlier turns of this conversation are not included.")] if cut else []
        for response in chain:
            cells += _turn_cells(response, deque(executions[response.id]))
        return _write(cells, f"Conversation {chain[0].id}")

    return await asyncio.to_thread(build)


def _turn_cells(response: StoredResponse, executions: deque[ExecutedCell]) -> list[NotebookNode]:
    cells = []
    for item in response.input_items:
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") in ("user", "assistant"):
            text = _text_of(item.get("content"))
            if text:
                cells.append(_said(item["role"], text))
        elif kind == "code_interpreter_call":
            cells.append(_logged_code_cell(str(item.get("code") or ""), item.get("outputs")))
    for item in response.body.get("output") or []:
        kind = item.get("type")
        if kind == "code_interpreter_call":
            code = str(item.get("code") or "")
            # Executions are kept in the order they ran, which is the order of the calls;
            # a call that never ran (refused at the tool-call limit) has none.
            if executions and executions[0].code == code:
                cells.append(code_cell(executions.popleft()))
            else:
                cells.append(_logged_code_cell(code, item.get("outputs")))
        elif kind == "message":
            text = _text_of(item.get("content"))
            if text:
                cells.append(_said("assistant", text))
    return cells


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        str(part.get("text", ""))
        for part in content or []
        if isinstance(part, dict) and "text" in part
    )
