"""The Responses API's wire shapes: a response body and the stream events that build it,
as the ``openai`` SDK's own types.

``ResponseWriter`` holds one response (an SDK ``Response``) and turns each loop event
into the SDK stream events OpenAI sends for it, numbered in order. Events leave as
plain dicts, dumped at the moment they happen, so later changes to an item never
reach an event already sent.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from openai import BaseModel
from openai.types.responses import (
    Response,
    ResponseCodeInterpreterCallCodeDeltaEvent,
    ResponseCodeInterpreterCallCodeDoneEvent,
    ResponseCodeInterpreterCallCompletedEvent,
    ResponseCodeInterpreterCallInProgressEvent,
    ResponseCodeInterpreterCallInterpretingEvent,
    ResponseCodeInterpreterToolCall,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseError,
    ResponseFailedEvent,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseOutputTextAnnotationAddedEvent,
    ResponseReasoningItem,
    ResponseReasoningTextDeltaEvent,
    ResponseReasoningTextDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response import IncompleteDetails
from openai.types.responses.response_code_interpreter_tool_call import OutputImage, OutputLogs
from openai.types.responses.response_output_text import AnnotationContainerFileCitation
from openai.types.responses.response_reasoning_item import Content as ReasoningText
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from interpreter.responses.events import (
    ItemDelta,
    ItemDone,
    ItemStarted,
    LoopEvent,
    ToolFinished,
    ToolRefused,
    ToolRunning,
    Usage,
)

Event = dict[str, Any]
FinalStatus = Literal["completed", "incomplete", "failed", "cancelled"]

FINAL_EVENTS: dict[str, Any] = {
    "completed": ResponseCompletedEvent,
    "incomplete": ResponseIncompleteEvent,
    "failed": ResponseFailedEvent,
}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_unset=True)


def usage_of(usage: Usage) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=usage.input,
        input_tokens_details=InputTokensDetails(
            cached_tokens=usage.cached, cache_write_tokens=max(0, usage.input - usage.cached)
        ),
        output_tokens=usage.output,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=usage.reasoning),
        total_tokens=usage.input + usage.output,
    )


class ResponseWriter:
    """One response: its body, and the events that report each change to it.

    ``include_outputs`` says whether code calls carry their outputs (the request's
    ``include=["code_interpreter_call.outputs"]``).
    """

    def __init__(self, body: Response, *, include_outputs: bool) -> None:
        self.body = body
        self.include_outputs = include_outputs
        self._sequence = 0

    @property
    def status(self) -> str:
        return str(self.body.status)

    def snapshot(self) -> dict[str, Any]:
        return dump(self.body)

    def _emit(self, cls: Any, type_: str, **fields: Any) -> Event:
        event = cls(type=type_, sequence_number=self._sequence, **fields)
        self._sequence += 1
        return dump(event)

    # -- the response as a whole ---------------------------------------------------------

    def started(self) -> list[Event]:
        self.body.status = "in_progress"
        return [
            self._emit(ResponseCreatedEvent, "response.created", response=self.body),
            self._emit(ResponseInProgressEvent, "response.in_progress", response=self.body),
        ]

    def finish(
        self,
        status: FinalStatus,
        usage: Usage,
        *,
        error: tuple[str, str] | None = None,
        incomplete_reason: str | None = None,
    ) -> Event | None:
        """Close the response; its last event (none for a cancelled one: nobody listens)."""
        for item in self.body.output:
            if getattr(item, "status", None) in ("in_progress", "interpreting"):
                item.status = "incomplete"  # type: ignore[union-attr]
        self.body.status = status
        self.body.usage = usage_of(usage)
        if status == "completed":
            self.body.completed_at = int(time.time())
        if error is not None:
            code, message = error
            self.body.error = ResponseError.model_validate({"code": code, "message": message})
        if incomplete_reason is not None:
            # model_construct: "max_tool_calls" is this server's reason, beyond the SDK's list.
            self.body.incomplete_details = IncompleteDetails.model_construct(
                reason=incomplete_reason
            )
        if status == "cancelled":
            return None
        return self._emit(FINAL_EVENTS[status], f"response.{status}", response=self.body)

    # -- loop events -----------------------------------------------------------------------

    def apply(self, event: LoopEvent) -> list[Event]:
        if isinstance(event, ItemStarted):
            return self._started(event)
        if isinstance(event, ItemDelta):
            return self._delta(event)
        if isinstance(event, ItemDone):
            return self._done(event)
        if isinstance(event, ToolRunning):
            return self._tool_running()
        if isinstance(event, ToolFinished):
            return self._tool_finished(event)
        assert isinstance(event, ToolRefused)
        return self._tool_refused()

    @property
    def _index(self) -> int:
        return len(self.body.output) - 1

    def _item(self) -> Any:
        return self.body.output[-1]

    def _started(self, event: ItemStarted) -> list[Event]:
        output = self.body.output
        if event.kind == "code":
            assert event.container_id is not None
            call = ResponseCodeInterpreterToolCall(
                id=new_id("ci"),
                type="code_interpreter_call",
                status="in_progress",
                code="",
                container_id=event.container_id,
                outputs=None,
            )
            output.append(call)
            return [
                self._emit(
                    ResponseOutputItemAddedEvent,
                    "response.output_item.added",
                    output_index=self._index,
                    item=call,
                ),
                self._emit(
                    ResponseCodeInterpreterCallInProgressEvent,
                    "response.code_interpreter_call.in_progress",
                    output_index=self._index,
                    item_id=call.id,
                ),
            ]
        if event.kind == "reasoning":
            reasoning = ResponseReasoningItem(
                id=new_id("rs"),
                type="reasoning",
                summary=[],
                content=[ReasoningText(type="reasoning_text", text="")],
                status="in_progress",
            )
            output.append(reasoning)
            return [
                self._emit(
                    ResponseOutputItemAddedEvent,
                    "response.output_item.added",
                    output_index=self._index,
                    item=reasoning,
                )
            ]
        message = ResponseOutputMessage(
            id=new_id("msg"), type="message", role="assistant", status="in_progress", content=[]
        )
        output.append(message)
        added = self._emit(
            ResponseOutputItemAddedEvent,
            "response.output_item.added",
            output_index=self._index,
            item=message,
        )
        part = ResponseOutputText(type="output_text", text="", annotations=[], logprobs=[])
        message.content.append(part)
        return [
            added,
            self._emit(
                ResponseContentPartAddedEvent,
                "response.content_part.added",
                item_id=message.id,
                output_index=self._index,
                content_index=0,
                part=part,
            ),
        ]

    def _delta(self, event: ItemDelta) -> list[Event]:
        item = self._item()
        if event.kind == "code":
            item.code += event.text
            return [
                self._emit(
                    ResponseCodeInterpreterCallCodeDeltaEvent,
                    "response.code_interpreter_call_code.delta",
                    item_id=item.id,
                    output_index=self._index,
                    delta=event.text,
                )
            ]
        if event.kind == "reasoning":
            item.content[0].text += event.text
            return [
                self._emit(
                    ResponseReasoningTextDeltaEvent,
                    "response.reasoning_text.delta",
                    item_id=item.id,
                    output_index=self._index,
                    content_index=0,
                    delta=event.text,
                )
            ]
        item.content[0].text += event.text
        return [
            self._emit(
                ResponseTextDeltaEvent,
                "response.output_text.delta",
                item_id=item.id,
                output_index=self._index,
                content_index=0,
                delta=event.text,
                logprobs=[],
            )
        ]

    def _done(self, event: ItemDone) -> list[Event]:
        item = self._item()
        index = self._index
        if event.kind == "code":
            item.code = event.text
            return [
                self._emit(
                    ResponseCodeInterpreterCallCodeDoneEvent,
                    "response.code_interpreter_call_code.done",
                    item_id=item.id,
                    output_index=index,
                    code=event.text,
                )
            ]
        if event.kind == "reasoning":
            item.content[0].text = event.text
            item.status = "completed"
            return [
                self._emit(
                    ResponseReasoningTextDoneEvent,
                    "response.reasoning_text.done",
                    item_id=item.id,
                    output_index=index,
                    content_index=0,
                    text=event.text,
                ),
                self._emit(
                    ResponseOutputItemDoneEvent,
                    "response.output_item.done",
                    output_index=index,
                    item=item,
                ),
            ]
        part = item.content[0]
        part.text = event.text
        events = []
        for number, citation in enumerate(event.citations):
            annotation = AnnotationContainerFileCitation(
                type="container_file_citation",
                container_id=citation.container_id,
                file_id=citation.file_id,
                filename=citation.filename,
                start_index=citation.start_index,
                end_index=citation.end_index,
            )
            part.annotations.append(annotation)
            events.append(
                self._emit(
                    ResponseOutputTextAnnotationAddedEvent,
                    "response.output_text.annotation.added",
                    item_id=item.id,
                    output_index=index,
                    content_index=0,
                    annotation_index=number,
                    annotation=dump(annotation),
                )
            )
        item.status = "completed"
        events += [
            self._emit(
                ResponseTextDoneEvent,
                "response.output_text.done",
                item_id=item.id,
                output_index=index,
                content_index=0,
                text=event.text,
                logprobs=[],
            ),
            self._emit(
                ResponseContentPartDoneEvent,
                "response.content_part.done",
                item_id=item.id,
                output_index=index,
                content_index=0,
                part=part,
            ),
            self._emit(
                ResponseOutputItemDoneEvent,
                "response.output_item.done",
                output_index=index,
                item=item,
            ),
        ]
        return events

    def _tool_running(self) -> list[Event]:
        item = self._item()
        item.status = "interpreting"
        return [
            self._emit(
                ResponseCodeInterpreterCallInterpretingEvent,
                "response.code_interpreter_call.interpreting",
                output_index=self._index,
                item_id=item.id,
            )
        ]

    def _tool_finished(self, event: ToolFinished) -> list[Event]:
        item = self._item()
        if self.include_outputs:
            outputs: list[OutputLogs | OutputImage] = [OutputLogs(type="logs", logs=event.logs)]
            outputs += [OutputImage(type="image", url=url) for url in event.image_urls]
            item.outputs = outputs
        item.status = event.status
        return [
            self._emit(
                ResponseCodeInterpreterCallCompletedEvent,
                "response.code_interpreter_call.completed",
                output_index=self._index,
                item_id=item.id,
            ),
            self._emit(
                ResponseOutputItemDoneEvent,
                "response.output_item.done",
                output_index=self._index,
                item=item,
            ),
        ]

    def _tool_refused(self) -> list[Event]:
        item = self._item()
        item.status = "incomplete"
        return [
            self._emit(
                ResponseOutputItemDoneEvent,
                "response.output_item.done",
                output_index=self._index,
                item=item,
            )
        ]
