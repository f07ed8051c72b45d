"""Chat Completions with server-side code execution, end to end: the official openai
SDK's ``chat.completions`` as the client, a real server and real sandboxes; the model is
the scripted double (tests/doubles.py) where exact control matters, and the shipped demo
model for a conversation a real model holds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from interpreter.api.app import create_app
from tests.conftest import RunningServer
from tests.doubles import ScriptedGenerator, final, python_call

pytestmark = [pytest.mark.docker]


def reasoning(text: str) -> str:
    return f"<|channel|>analysis<|message|>{text}<|end|><|start|>assistant"


@pytest.fixture
def start(
    make_settings: Callable[..., Any], serve: Callable[..., RunningServer]
) -> Iterator[Callable[..., tuple[OpenAI, RunningServer]]]:
    clients: list[OpenAI] = []

    def start(generator: Any = None, **settings: Any) -> tuple[OpenAI, RunningServer]:
        app = create_app(make_settings(**settings), generator=generator, cleanup_on_exit=True)
        server = serve(app)
        client = OpenAI(base_url=server.v1, api_key="unused", max_retries=0, timeout=300)
        clients.append(client)
        return client, server

    yield start
    for client in clients:
        client.close()


def streamed(client: OpenAI, **request: Any) -> tuple[str, str, Any]:
    """Content, reasoning and the last chunk of a streamed completion."""
    content = reasoning_text = ""
    last = None
    with client.chat.completions.create(stream=True, **request) as stream:
        for chunk in stream:
            last = chunk
            if chunk.choices:
                delta = chunk.choices[0].delta
                content += delta.content or ""
                reasoning_text += getattr(delta, "reasoning_content", None) or ""
    return content, reasoning_text, last


def test_two_turns_share_a_kernel_found_from_the_history(start) -> None:
    plot = "import matplotlib.pyplot as plt\nplt.plot([x, x ** 2])\nplt.show()\nprint(x ** 2)"
    double = ScriptedGenerator(
        [
            reasoning("Set it, then show it.") + python_call("x = 6 * 7\nprint(x)"),
            final("x is 42."),
            python_call(plot),
            final("x squared is 1764."),
            "<|channel|>final<|message|>no tool named<|call|>",
            final("la " * 2000),  # never finishes before the stop
        ],
        token_delay_s=0.005,
    )
    client, server = start(double)
    messages: list[Any] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Set x to 6 * 7."},
    ]
    first = client.chat.completions.create(model="scripted", messages=messages)
    message = first.choices[0].message
    assert first.object == "chat.completion"
    assert first.choices[0].finish_reason == "stop"
    assert message.content == "```python\nx = 6 * 7\nprint(x)\n```\n\n```text\n42\n```\n\nx is 42."
    assert message.reasoning_content == "Set it, then show it."  # type: ignore[attr-defined]
    assert first.usage is not None and first.usage.completion_tokens > 0
    assert "Be brief." in double.prompt_text(0)

    # The front-end sends the history back: the same kernel has x, and the model is
    # shown its own earlier code and the tool's real output, not the Markdown copy.
    messages += [
        {"role": "assistant", "content": message.content + "\n"},
        {"role": "user", "content": "What is x squared?"},
    ]
    content, reasoning_text, last = streamed(
        client,
        model="scripted",
        messages=messages,
        stream_options={"include_usage": True},
    )
    assert reasoning_text == ""
    assert content.startswith(f"```python\n{plot}\n```\n")
    assert "```text\n1764\n```" in content
    assert content.endswith("x squared is 1764.")
    prompt = double.prompt_text(2)
    assert "code<|message|>x = 6 * 7\nprint(x)<|call|>" in prompt
    assert "<|start|>python to=assistant<|channel|>analysis<|message|>42<|end|>" in prompt
    assert "<|channel|>final<|message|>x is 42.<|end|>" in prompt
    assert last.choices == [] and last.usage.total_tokens > 0
    # The plot is a link this server serves.
    url = content.split("![image 1](", 1)[1].split(")", 1)[0]
    assert url.startswith(f"{server.v1}/code_interpreter/images/")
    assert httpx.get(url).content[:8] == b"\x89PNG\r\n\x1a\n"

    # A failure mid-stream reaches the SDK as an error.
    with pytest.raises(openai.APIError) as failed:
        streamed(client, model="scripted", messages=[{"role": "user", "content": "Hi"}])
    assert "named no tool" in str(failed.value)

    # Bad input: 400, naming the field.
    for bad, param in [
        ([{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}], "messages[1].role"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            "messages[0].content[0].type",
        ),
        (
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
            "messages[1].role",
        ),
    ]:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="scripted", messages=bad)
        assert refused.value.param == param
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="scripted",
            messages=[{"role": "user", "content": "a"}],
            tools=[{"type": "function", "function": {"name": "f"}}],
        )
    assert refused.value.param == "tools"

    # The service begins to stop: a turn under way ends with an error the SDK raises.
    with (
        pytest.raises(openai.APIError) as stopped,
        client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "Sing"}], stream=True
        ) as stream,
    ):
        for number, _ in enumerate(stream):
            if number == 3:
                responses = server.app.state.responses
                server.loop.call_soon_threadsafe(responses.begin_shutdown)
    assert "shutting down" in str(stopped.value)


def test_explicit_keys_pick_the_container_in_their_order(start) -> None:
    """The header before metadata before user; each keeps its container across requests
    whose messages have nothing in common."""
    double = ScriptedGenerator(
        [
            python_call("z = 'header'"),
            final("ok"),
            python_call("z = 'user'"),
            final("ok"),
            python_call("print(z)"),
            final("?"),
            python_call("print(z)"),
            final("?"),
            python_call("print(z)"),
            final("?"),
        ]
    )
    client, _ = start(double)

    def ask(text: str, **keys: Any) -> str:
        answer = client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": text}], **keys
        )
        return answer.choices[0].message.content or ""

    ask("one", extra_headers={"x-session-affinity": "conversation-a"})
    ask("two", user="alice")
    both = {"extra_headers": {"x-session-affinity": "conversation-a"}, "user": "alice"}
    assert "```text\nheader\n```" in ask("three", metadata={"session_id": "other"}, **both)
    assert "```text\nuser\n```" in ask("four", user="alice")
    # metadata before user: "other" has no container yet, so a new, empty one.
    assert "NameError" in ask("five", metadata={"session_id": "other"}, user="alice")


@pytest.mark.slow
def test_the_demo_model_holds_a_conversation(start) -> None:
    client, _ = start(model="demo")
    messages: list[Any] = [{"role": "user", "content": "Set x to 42."}]
    first = client.chat.completions.create(model="demo", messages=messages)
    assert "x = 42" in (first.choices[0].message.content or "")
    messages += [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "What is x squared?"},
    ]
    content, _, _ = streamed(client, model="demo", messages=messages)
    assert "1764" in content
    assert "```python" in content
