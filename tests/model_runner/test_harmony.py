"""Rendering prompts a message at a time gives harmony's own rendering of the whole."""

from openai_harmony import Message, Role

from model_runner.harmony import (
    RENDERED_MESSAGE_MAX_CHARS,
    RENDERED_MESSAGES_KEPT,
    HarmonyRenderer,
    PromptTokens,
    SystemPrompt,
    developer_message,
    final_message,
    tool_output_message,
    user_message,
)

RENDERER = HarmonyRenderer()


def python_call(code: str, channel: str = "analysis") -> Message:
    return (
        Message.from_role_and_content(Role.ASSISTANT, code)
        .with_channel(channel)
        .with_recipient("python")
        .with_content_type("code")
    )


def conversation() -> list[Message]:
    return [
        SystemPrompt("2026-12-01", reasoning_effort="low").to_message(),
        developer_message("Answer in one sentence."),
        user_message("What is 12 * 34?"),
        Message.from_role_and_content(Role.ASSISTANT, "Compute it.").with_channel("analysis"),
        python_call("print(12 * 34)"),
        tool_output_message("408"),
        final_message("The result is 408."),
        user_message("Write it to a file."),
        python_call("open('/mnt/data/r.txt', 'w').write('408')", channel="commentary"),
        tool_output_message("", channel="commentary"),
        final_message("I wrote r.txt."),
    ]


def test_a_growing_conversation_renders_as_harmony_renders_it_whole() -> None:
    messages = conversation()
    prompt = PromptTokens(RENDERER)
    for end in range(len(messages) + 1):
        assert prompt.render(messages[:end]) == RENDERER.render_prompt(messages[:end])


def test_dropped_and_replaced_messages_are_rendered_afresh() -> None:
    messages = conversation()
    prompt = PromptTokens(RENDERER)
    prompt.render(messages)
    # Truncation: the oldest turn goes, the system and developer messages stay.
    truncated = messages[:2] + messages[7:]
    assert prompt.render(truncated) == RENDERER.render_prompt(truncated)
    # An equal-looking message that is another object is not taken for the old one.
    replaced = [*truncated[:-1], final_message("I wrote the file r.txt.")]
    assert prompt.render(replaced) == RENDERER.render_prompt(replaced)
    assert prompt.render(messages) == RENDERER.render_prompt(messages)


def test_messages_are_remembered_by_content_and_not_without_bound() -> None:
    renderer = HarmonyRenderer()
    first = renderer.render_message(user_message("What is 2 * 3?"))
    assert renderer.render_message(user_message("What is 2 * 3?")) == first
    assert renderer.render_message(user_message("What is 2 * 4?")) != first
    for number in range(RENDERED_MESSAGES_KEPT + 10):
        message = user_message(f"What is {number} squared?")
        assert list(renderer.render_message(message)) == RENDERER.encoding.render(message)
    assert len(renderer._rendered) == RENDERED_MESSAGES_KEPT
    long = user_message("word " * RENDERED_MESSAGE_MAX_CHARS)
    assert list(renderer.render_message(long)) == RENDERER.encoding.render(long)
    assert long.to_json() not in renderer._rendered
