"""Wire shapes of ``POST /v1/responses``: the request we accept. What we send back is
checked against the ``openai`` SDK's own types (``Response``, the stream events) in tests,
and built as plain dicts of exactly those shapes here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from interpreter.errors import InvalidRequest

SUPPORTED_INCLUDES = {"code_interpreter_call.outputs", "reasoning.encrypted_content"}


class CodeInterpreterAuto(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["auto"] = "auto"
    file_ids: list[str] = Field(default_factory=list, max_length=100)
    memory_limit: str | None = None


class CodeInterpreterTool(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["code_interpreter"]
    container: str | CodeInterpreterAuto = Field(default_factory=CodeInterpreterAuto)


class Reasoning(BaseModel):
    model_config = ConfigDict(extra="ignore")

    effort: Literal["minimal", "low", "medium", "high"] | None = None
    summary: str | None = None


class ResponsesRequest(BaseModel):
    """The request fields this server understands; others OpenAI defines are accepted
    and ignored, so existing clients keep working."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]] = Field(default="")
    instructions: str | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    tool_choice: str | dict[str, Any] = "auto"
    reasoning: Reasoning | None = None
    max_output_tokens: int | None = Field(default=None, ge=16)
    max_tool_calls: int | None = Field(default=None, ge=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = None
    include: list[str] = Field(default_factory=list)
    background: bool = False
    prompt_cache_key: str | None = Field(default=None, max_length=256)
    metadata: dict[str, str] | None = None
    parallel_tool_calls: bool = True
    user: str | None = None
    # "auto": drop the oldest turns when the conversation outgrows the model's context.
    truncation: Literal["auto", "disabled"] = "disabled"
    seed: int | None = None  # ours: reproducible sampling

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and len(value) > 16:
            raise ValueError("metadata holds at most 16 keys")
        return value

    def code_interpreter(self) -> CodeInterpreterTool | None:
        """The code_interpreter tool, or None; a 400 naming any tool we do not run."""
        found: CodeInterpreterTool | None = None
        for index, tool in enumerate(self.tools):
            kind = tool.get("type")
            if kind != "code_interpreter":
                raise InvalidRequest(
                    f"Tool type {kind!r} is not supported by this server; it runs only "
                    "'code_interpreter'.",
                    param=f"tools[{index}].type",
                )
            try:
                found = CodeInterpreterTool.model_validate(tool)
            except ValueError as exc:
                raise InvalidRequest(
                    f"Invalid code_interpreter tool: {exc}", param=f"tools[{index}]"
                ) from exc
        choice = self.tool_choice
        if isinstance(choice, dict) and choice.get("type") not in (None, "code_interpreter"):
            raise InvalidRequest(
                f"tool_choice names {choice.get('type')!r}, which this server does not run.",
                param="tool_choice",
            )
        if choice == "required" and found is None:
            raise InvalidRequest("tool_choice 'required' needs a tool.", param="tool_choice")
        return found

    def check_includes(self) -> None:
        for item in self.include:
            if item not in SUPPORTED_INCLUDES:
                raise InvalidRequest(f"include value {item!r} is not supported.", param="include")
