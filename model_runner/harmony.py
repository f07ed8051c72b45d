"""Harmony rendering and streaming parsing for gpt-oss models, via ``openai-harmony``.

The service builds conversations from these message constructors, renders them to
tokens for the generator, and turns generated tokens back into typed events with
``HarmonyStreamParser``. The demo model's training data is rendered by the same code, so
what it learns is exactly what it is shown at inference time.
"""

from __future__ import annotations

import functools
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from openai_harmony import (
    Author,
    Conversation,
    DeveloperContent,
    HarmonyEncoding,
    HarmonyEncodingName,
    Message,
    ReasoningEffort,
    RenderConversationConfig,
    Role,
    StreamableParser,
    SystemContent,
    ToolNamespaceConfig,
    load_harmony_encoding,
)

VOCAB_DIR = Path(__file__).parent / "vocab"

PYTHON_TOOL = "python"

EMPTY_TOOL_OUTPUT = "[The code ran and printed nothing.]"

# Messages whose tokens a renderer keeps, and the longest it keeps (as JSON): a few MB
# at most, whatever clients send (see render_message).
RENDERED_MESSAGES_KEPT = 512
RENDERED_MESSAGE_MAX_CHARS = 16_384


@functools.cache
def load_encoding() -> HarmonyEncoding:
    """The o200k_harmony encoding, loaded from the vendored vocabulary.

    ``load_harmony_encoding`` downloads the vocabulary unless ``TIKTOKEN_ENCODINGS_BASE``
    names a folder holding it; pointing it at our copy keeps the project offline.
    """
    os.environ.setdefault("TIKTOKEN_ENCODINGS_BASE", str(VOCAB_DIR))
    return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


def python_tool_description(timeout_s: float, internet: bool = False) -> str:
    """The python tool's text, stating the promises our sandbox really keeps."""
    network = "enabled" if internet else "disabled: code cannot reach the network"
    return (
        "Use this tool to execute Python code. The code and its output are shown to the "
        "user, so use it for calculations, tables, plots and files.\n\n"
        "When you send a message containing Python code to python, it will be executed in "
        "a stateful Jupyter notebook environment. python will respond with the output of "
        f"the execution or time out after {timeout_s:g} seconds. The drive at '/mnt/data' "
        "can be used to save and persist user files. Internet access for this session is "
        f"{network}."
    )


@dataclass(frozen=True)
class SystemPrompt:
    """Everything in the system message. Keep it fixed for a conversation so the
    rendered prefix is byte-stable and the prefix cache hits."""

    conversation_start_date: str
    reasoning_effort: Literal["low", "medium", "high"] = "medium"
    tool_timeout_s: float = 120.0
    internet: bool = False
    with_python_tool: bool = True

    def to_message(self) -> Message:
        content = (
            SystemContent.new()
            .with_conversation_start_date(self.conversation_start_date)
            .with_reasoning_effort(ReasoningEffort(self.reasoning_effort.capitalize()))
        )
        if self.with_python_tool:
            content = content.with_tools(
                ToolNamespaceConfig(
                    name=PYTHON_TOOL,
                    description=python_tool_description(self.tool_timeout_s, self.internet),
                    tools=[],
                )
            )
        return Message.from_role_and_content(Role.SYSTEM, content)


# -- message constructors --------------------------------------------------------------


def developer_message(instructions: str) -> Message:
    return Message.from_role_and_content(
        Role.DEVELOPER, DeveloperContent.new().with_instructions(instructions)
    )


def user_message(text: str) -> Message:
    return Message.from_role_and_content(Role.USER, text)


def reasoning_message(text: str) -> Message:
    return Message.from_role_and_content(Role.ASSISTANT, text).with_channel("analysis")


def python_call_message(code: str, channel: str = "analysis") -> Message:
    return (
        Message.from_role_and_content(Role.ASSISTANT, code)
        .with_channel(channel)
        .with_recipient(PYTHON_TOOL)
        .with_content_type("code")
    )


def tool_output_message(text: str, channel: str = "analysis") -> Message:
    """The python tool's answer. An empty output still says something, so the model
    never sees an empty message and wonders whether the call ran."""
    return (
        Message.from_author_and_content(
            Author.new(Role.TOOL, PYTHON_TOOL), text or EMPTY_TOOL_OUTPUT
        )
        .with_channel(channel)
        .with_recipient("assistant")
    )


def final_message(text: str) -> Message:
    return Message.from_role_and_content(Role.ASSISTANT, text).with_channel("final")


# -- rendering ---------------------------------------------------------------------------


class HarmonyRenderer:
    """Renders conversations to prompt tokens for the assistant's next message."""

    def __init__(self, encoding: HarmonyEncoding | None = None) -> None:
        self.encoding = encoding or load_encoding()
        self.stop_tokens = frozenset(self.encoding.stop_tokens_for_assistant_actions())
        self.call_token = self.encoding.encode("<|call|>", allowed_special="all")[0]
        self.return_token = self.encoding.encode("<|return|>", allowed_special="all")[0]
        # What follows the conversation in a prompt: the assistant's turn begins.
        self.completion_start = self.render_prompt([])
        self._rendered: OrderedDict[str, tuple[int, ...]] = OrderedDict()

    def render_prompt(self, messages: Sequence[Message]) -> list[int]:
        """Tokens of ``messages`` followed by ``<|start|>assistant``.

        Earlier turns are rendered as given: the caller decides what to replay (tool calls
        and outputs are kept so a follow-up turn sees what ran), and harmony's own
        dropping of analysis messages is off so that nothing the caller kept vanishes.
        """
        return self.encoding.render_conversation_for_completion(
            Conversation.from_messages(list(messages)),
            Role.ASSISTANT,
            RenderConversationConfig(auto_drop_analysis=False),
        )

    def render_message(self, message: Message) -> tuple[int, ...]:
        """One message's tokens, as ``render_prompt`` renders it in a conversation that
        declares no function tools (none the service builds does).

        Remembered by content for the most recent messages: harmony takes about 0.25 ms
        to render even a short message (0.5 ms the system message) and 0.01 to 0.03 ms
        to write it as JSON, and every conversation starts with the same system and
        developer messages, and a follow-up replays its earlier turns.
        """
        key = message.to_json()
        if len(key) > RENDERED_MESSAGE_MAX_CHARS:
            return tuple(self.encoding.render(message))
        tokens = self._rendered.get(key)
        if tokens is None:
            tokens = tuple(self.encoding.render(message))
            self._rendered[key] = tokens
            if len(self._rendered) > RENDERED_MESSAGES_KEPT:
                self._rendered.popitem(last=False)
        else:
            self._rendered.move_to_end(key)
        return tokens

    def render_training(self, messages: Sequence[Message]) -> tuple[list[int], list[bool]]:
        """Tokens of a whole conversation and, per token, whether the assistant wrote it.

        The mask marks the assistant's messages from the token after ``<|start|>`` (the
        role) through their closing ``<|call|>``/``<|return|>``/``<|end|>``: exactly what the
        model produces after the service appends ``<|start|>assistant`` to a prompt...
        except the role name itself, which the prompt already holds.
        """
        tokens: list[int] = []
        mask: list[bool] = []
        for index, message in enumerate(messages):
            rendered = self.encoding.render(message)
            is_last = index == len(messages) - 1
            if message.author.role == Role.ASSISTANT:
                if is_last and message.channel == "final":
                    # A final answer ends the turn with <|return|>, not <|end|>.
                    rendered = [*rendered[:-1], self.return_token]
                # rendered = <|start|> "assistant" ...; the prompt supplies the first two.
                tokens += rendered
                mask += [False, False] + [True] * (len(rendered) - 2)
            else:
                tokens += rendered
                mask += [False] * len(rendered)
        return tokens, mask

    def decode(self, tokens: Sequence[int]) -> str:
        return self.encoding.decode(list(tokens))

    def new_parser(self) -> HarmonyStreamParser:
        return HarmonyStreamParser(self.encoding)


class PromptTokens:
    """The prompt of a conversation that grows, rendered a message at a time.

    Harmony renders a conversation as each message's tokens in turn, then
    ``<|start|>assistant``; rendering a message costs a fraction of a millisecond of the
    event loop, and a turn renders its whole conversation for every model call. This
    keeps each message's tokens and renders only the messages that are new since the
    last call: those after the longest run of the very same message objects.

    Messages are compared by identity, so a message must not change once rendered
    (openai_harmony's ``with_*`` methods change a message in place: build it fully first).
    """

    def __init__(self, renderer: HarmonyRenderer) -> None:
        self._renderer = renderer
        self._messages: list[Message] = []
        self._tokens: list[int] = []
        self._ends: list[int] = []  # where each message's tokens end in _tokens

    def render(self, messages: Sequence[Message]) -> list[int]:
        """The same tokens as ``HarmonyRenderer.render_prompt(messages)``."""
        keep = 0
        for kept, message in zip(self._messages, messages, strict=False):
            if kept is not message:
                break
            keep += 1
        del self._messages[keep:]
        del self._ends[keep:]
        del self._tokens[self._ends[-1] if self._ends else 0 :]
        for message in messages[keep:]:
            self._tokens += self._renderer.render_message(message)
            self._messages.append(message)
            self._ends.append(len(self._tokens))
        return self._tokens + self._renderer.completion_start


# -- streaming parse ---------------------------------------------------------------------

DeltaKind = Literal["reasoning", "code", "text"]


@dataclass(frozen=True)
class ContentDelta:
    """A piece of the message being written: reasoning, tool code, or the answer."""

    kind: DeltaKind
    text: str


@dataclass(frozen=True)
class MessageStarted:
    kind: DeltaKind
    recipient: str | None


@dataclass(frozen=True)
class MessageDone:
    """A complete assistant message, as harmony parsed it."""

    kind: DeltaKind
    text: str
    channel: str | None
    recipient: str | None
    message: Message


ParseEvent = ContentDelta | MessageStarted | MessageDone


class HarmonyParseError(ValueError):
    """The model produced tokens that are not valid harmony."""


def _kind_of(channel: str | None, recipient: str | None) -> DeltaKind:
    if recipient:
        return "code"
    if channel == "final":
        return "text"
    return "reasoning"


class HarmonyStreamParser:
    """Feeds completion tokens one at a time and yields typed events as they arrive.

    The header (channel, recipient) of a message is known before its first content
    token, so a ``MessageStarted`` always precedes that message's deltas.
    """

    def __init__(self, encoding: HarmonyEncoding) -> None:
        self._parser = StreamableParser(encoding, role=Role.ASSISTANT)
        self._seen_messages = 0
        self._open_kind: DeltaKind | None = None

    def feed(self, token: int) -> list[ParseEvent]:
        try:
            self._parser.process(token)
        except Exception as exc:  # the Rust parser raises a bare HarmonyError
            raise HarmonyParseError(str(exc)) from exc
        return self._collect()

    def finish(self) -> list[ParseEvent]:
        """Close the stream (no stop token came): flush a message left open."""
        try:
            self._parser.process_eos()
        except Exception as exc:
            raise HarmonyParseError(str(exc)) from exc
        return self._collect()

    def _collect(self) -> list[ParseEvent]:
        events: list[ParseEvent] = []
        delta = self._parser.last_content_delta
        if delta:
            if self._open_kind is None:
                self._open_kind = _kind_of(
                    self._parser.current_channel, self._parser.current_recipient
                )
                events.append(MessageStarted(self._open_kind, self._parser.current_recipient))
            events.append(ContentDelta(self._open_kind, delta))
        messages = self._parser.messages
        for message in messages[self._seen_messages :]:
            kind = _kind_of(message.channel, message.recipient)
            if self._open_kind is None:
                # A message with empty content never produced a delta.
                events.append(MessageStarted(kind, message.recipient))
            text = "".join(getattr(part, "text", "") for part in message.content)
            events.append(MessageDone(kind, text, message.channel, message.recipient, message))
            self._open_kind = None
        self._seen_messages = len(messages)
        return events


# -- what the model is shown of an execution ---------------------------------------------


@dataclass(frozen=True)
class ToolObservation:
    """An execution's outputs as the model sees them, independent of the sandbox types.

    The service fills this from a sandbox result; the demo model's training data fills
    it from outputs computed while generating conversations. Both then go through
    ``format_tool_output``, so the model is trained on exactly the text it is shown.
    """

    text: str = ""  # stdout, stderr and plain-text results, in the order they came
    images: int = 0  # images displayed to the user (matplotlib figures, PIL images)
    error: str | None = None  # "NameError: name 'x' is not defined", plus a short traceback
    new_files: tuple[str, ...] = ()  # paths under /mnt/data the code created or changed
    truncated: bool = False
    timed_out_after_s: float | None = None
    notice: str | None = None  # e.g. that the kernel restarted and earlier state is gone


def format_tool_output(observation: ToolObservation) -> str:
    """The python tool's message text for one execution."""
    parts: list[str] = []
    if observation.notice:
        parts.append(f"[{observation.notice}]")
    if observation.text:
        parts.append(observation.text.rstrip("\n"))
    if observation.truncated:
        parts.append("[output truncated]")
    parts.extend("[image displayed to the user]" for _ in range(observation.images))
    if observation.error:
        parts.append(observation.error.rstrip("\n"))
    if observation.timed_out_after_s is not None:
        parts.append(
            f"[execution interrupted after {observation.timed_out_after_s:g} seconds; "
            "variables defined before it are kept]"
        )
    parts.extend(f"[file saved: {path}]" for path in observation.new_files)
    return "\n".join(parts) if parts else EMPTY_TOOL_OUTPUT
