"""The parts of a turn that every API running the model/tool loop needs: the system
prompt, the sampling and limits of a ``ModelTurn``, the code tool, and the conversation's
session. The Responses API (``serving``) and Chat Completions (``interpreter.chat``)
both build their turns here, and share one loop and one admission gate, so the model is
spoken to the same way, and its capacity shared fairly, whichever API a client uses.
"""

from __future__ import annotations

from datetime import UTC, datetime

from openai_harmony import Message

from interpreter.config import Settings
from interpreter.errors import InvalidRequest, SessionExpired, SessionNotFound
from interpreter.files import FileStore
from interpreter.responses.code_tool import EXPIRED_NOTICE, CodeTool
from interpreter.responses.loop import ContextOverflow, ModelToolLoop, ModelTurn, Sampling
from interpreter.responses.protocol import CodeInterpreterTool
from interpreter.responses.scheduler import AdmissionGate
from interpreter.responses.store import ResponseStore
from interpreter.sessions.manager import Session, SessionManager
from model_runner.generator import Generator
from model_runner.harmony import HarmonyRenderer, SystemPrompt, developer_message

# The most output tokens a request may ask for.
MAX_OUTPUT_TOKENS_CAP = 32_768


def today() -> str:
    """The date a new conversation starts on (UTC), as its system message gives it."""
    return datetime.now(UTC).date().isoformat()


class TurnBuilder:
    def __init__(
        self,
        settings: Settings,
        sessions: SessionManager,
        generator: Generator,
        store: ResponseStore,
        files: FileStore,
        gate: AdmissionGate | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.generator = generator
        self.store = store
        self.files = files
        self.renderer = HarmonyRenderer()
        self.gate = gate or AdmissionGate(max(1, generator.concurrency))
        self.loop = ModelToolLoop(generator, self.gate, self.renderer)

    def system_prompt(
        self, *, conversation_date: str | None, effort: str | None, with_python: bool
    ) -> SystemPrompt:
        """``conversation_date`` is the conversation's first date: kept, it keeps the
        prompt prefix byte-stable; None starts a conversation today."""
        effort = effort or "medium"
        return SystemPrompt(
            conversation_start_date=conversation_date or today(),
            reasoning_effort="low" if effort == "minimal" else effort,  # type: ignore[arg-type]
            tool_timeout_s=self.settings.execution_timeout_s,
            with_python_tool=with_python,
        )

    @staticmethod
    def prefix(system: SystemPrompt, instructions: str) -> list[Message]:
        prefix = [system.to_message()]
        if instructions:
            prefix.append(developer_message(instructions))
        return prefix

    def sampling(
        self, temperature: float | None, top_p: float | None, seed: int | None
    ) -> Sampling:
        return Sampling(
            temperature=next(
                t
                for t in (
                    temperature,
                    self.settings.default_temperature,
                    self.generator.default_temperature,
                )
                if t is not None
            ),
            top_p=top_p if top_p is not None else 1.0,
            seed=seed,
        )

    def max_output_tokens(self, requested: int | None) -> int:
        return min(requested or self.settings.max_output_tokens, MAX_OUTPUT_TOKENS_CAP)

    def max_tool_calls(self, requested: int | None) -> int:
        limit = self.settings.max_tool_calls
        return limit if requested is None else min(limit, requested)

    def fit(self, turn: ModelTurn, param: str) -> None:
        """A 400 naming ``param`` when the conversation does not fit the model's context."""
        try:
            self.loop.fit(turn)
        except ContextOverflow as exc:
            raise InvalidRequest(str(exc), param=param, code="context_length_exceeded") from exc

    async def continue_in(
        self, container_id: str | None, owner: str | None
    ) -> tuple[Session | None, str | None]:
        """The session a conversation goes on in, from its earlier container, and what to
        tell the model about it: nothing for a live one; for one that has gone (expired,
        ended for room, or lost with its container), that its earlier state is lost,
        while a new container is made at the first python call."""
        if container_id is None:
            return None, None
        try:
            session = self.sessions.get(container_id, owner)
            await self.sessions.check_alive(session)
        except (SessionExpired, SessionNotFound):
            return None, EXPIRED_NOTICE
        return session, None

    def code_tool(
        self,
        *,
        config: CodeInterpreterTool,
        owner: str | None,
        response_id: str,
        conversation_id: str,
        base_url: str,
        session: Session | None,
        notice: str | None,
    ) -> CodeTool:
        return CodeTool(
            config=config,
            sessions=self.sessions,
            files=self.files,
            images=self.store,
            executions=self.store,
            owner=owner,
            response_id=response_id,
            conversation_id=conversation_id,
            base_url=base_url,
            output_max_tokens=self.settings.tool_output_max_tokens,
            encode=lambda text: self.renderer.encoding.encode(text, disallowed_special=()),
            decode=self.renderer.decode,
            session=session,
            notice=notice,
        )
