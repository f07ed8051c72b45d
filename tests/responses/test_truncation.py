"""``truncation``: a conversation that outgrows the model's context fails with a clear
400 by default, and with "auto" drops its oldest turns while the kernel keeps its state.
The scripted double declares a small context (400 tokens; the system prompt alone is
about 180)."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.doubles import final, python_call

pytestmark = [pytest.mark.docker]

TOOLS: list[Any] = [{"type": "code_interpreter", "container": {"type": "auto"}}]
LONG_ANSWER = "x is 42. " + "More words about it. " * 40  # ~200 tokens
CONTEXT = 400


def test_overflow_is_a_clear_400_by_default(start) -> None:
    client, double, _ = start(
        [python_call("x = 42\nprint(x)"), final(LONG_ANSWER)], max_context=CONTEXT
    )
    first = client.responses.create(model="scripted", input="Set x to 42.", tools=TOOLS)
    assert first.status == "completed" and first.truncation == "disabled"
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="scripted",
            input="What is x squared?",
            tools=TOOLS,
            previous_response_id=first.id,
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "context_length_exceeded"
    assert "truncation='auto'" in error["message"]
    assert len(double.prompts) == 2  # the second request never reached the model


def test_auto_drops_the_oldest_turns_and_the_kernel_keeps_its_state(start) -> None:
    client, double, _ = start(
        [
            python_call("x = 42\nprint(x)"),
            final(LONG_ANSWER),
            python_call("print(x ** 2)"),
            final("It is 1764."),
        ],
        max_context=CONTEXT,
    )
    first = client.responses.create(
        model="scripted", input="Set x to 42.", tools=TOOLS, truncation="auto"
    )
    second = client.responses.create(
        model="scripted",
        input="What is x squared?",
        tools=TOOLS,
        previous_response_id=first.id,
        truncation="auto",
        include=["code_interpreter_call.outputs"],
    )
    assert second.status == "completed" and second.truncation == "auto"
    call = second.output[0]
    assert call.type == "code_interpreter_call" and call.outputs is not None
    assert call.outputs[0].logs == "1764\n"  # x came from the dropped turn, via the kernel
    prompt = double.prompt_text(2)
    assert "Set x to 42." not in prompt and "More words about it" not in prompt
    assert "What is x squared?" in prompt
    assert len(double.prompts[2]) <= CONTEXT * 3 // 4


def test_an_overflow_mid_turn_fails_the_response_with_a_reason(start) -> None:
    client, _, _ = start(
        [python_call("print('word ' * 2000)"), final("unreachable")], max_context=CONTEXT
    )
    response = client.responses.create(model="scripted", input="Print a lot.", tools=TOOLS)
    assert response.status == "failed"
    assert response.error is not None and response.error.code == "invalid_prompt"
    assert "model's context is 400" in response.error.message
