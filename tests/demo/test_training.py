"""The demo model's data and trainer: conversations are valid harmony whose tool outputs
are what Python really prints, and a few training steps on a tiny model lower the loss.

No Docker: the code runs in a local Python process (``model_runner.demo.local_kernel``),
the same stand-in the offline evaluator uses.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from pathlib import Path

import pytest
from openai_harmony import Role

from model_runner.demo import data, evaluate, train
from model_runner.harmony import HarmonyRenderer, ToolObservation, format_tool_output
from model_runner.loading import DEMO_CHECKPOINT


@pytest.fixture(scope="module")
def renderer() -> HarmonyRenderer:
    return HarmonyRenderer()


@pytest.mark.parametrize("family", data.FAMILIES)
def test_conversations_parse_back(renderer: HarmonyRenderer, family: str) -> None:
    for conversation in data.conversations(data.EVAL_SEED, 10, [family]):
        example = data.render_example(renderer, conversation)
        parsed = renderer.encoding.parse_messages_from_completion_tokens(example.tokens, None)
        # System and developer messages parse back as plain text; the rest exactly.
        skip = 2 if conversation.instructions else 1
        assert [m.author.role for m in parsed[:skip]] == [Role.SYSTEM, Role.DEVELOPER][:skip]
        assert parsed[skip:] == conversation.messages()[skip:]
        # The loss covers the assistant's messages and nothing the prompt supplies.
        learnt = renderer.decode(
            [t for t, m in zip(example.tokens, example.mask, strict=True) if m]
        )
        # ...and an earlier turn's replayed <|end|> stays out of it.
        expected = "".join(
            f" to=python<|channel|>analysis code<|message|>{turn.code}<|call|>"
            f"<|channel|>final<|message|>{turn.answer}"
            for turn in conversation.turns
        )
        assert learnt == expected + "<|return|>"


def test_replayed_final_answers_end_outside_the_loss(renderer: HarmonyRenderer) -> None:
    (conversation,) = data.conversations(3, 1, ["state"])
    example = data.render_example(renderer, conversation)
    first = renderer.render_prompt(conversation.messages(upto_turn=1))
    # The second turn's prompt ends "...<|end|><|start|>assistant": that <|end|> closes
    # the first turn's final answer.
    end_index = len(first) - 3
    assert renderer.decode([example.tokens[end_index]]) == "<|end|>"
    assert not example.mask[end_index]


def test_train_and_eval_prompts_differ() -> None:
    train_prompts = {
        c.turns[0].user for c in data.conversations(data.TRAIN_SEED, 600, ["arithmetic"])
    }
    eval_prompts = {
        c.turns[0].user for c in data.conversations(data.EVAL_SEED, 100, ["arithmetic"])
    }
    assert len(eval_prompts - train_prompts) > 90


@pytest.mark.parametrize("family", ["arithmetic", "state", "primes_fib", "file"])
def test_tool_outputs_are_what_python_prints(family: str) -> None:
    """The families whose code needs only the standard library, run for real."""
    for conversation in data.conversations(11, 8, [family]):
        kernel = evaluate.LocalKernel(sys.executable, conversation.files)
        try:
            for index, turn in enumerate(conversation.turns):
                assert format_tool_output(kernel.run(turn.code)) == turn.tool_output
                assert evaluate.check_turn(conversation, index, turn.answer, kernel)
        finally:
            kernel.close()


def test_csv_summary_matches_the_file() -> None:
    for conversation in data.conversations(5, 10, ["csv"]):
        ((name, text),) = conversation.files.items()
        rows = list(csv.reader(io.StringIO(text)))
        header, body = rows[0], rows[1:]
        column = conversation.turns[0].code.split('df["')[1].split('"')[0]
        values = [int(row[header.index(column)]) for row in body]
        shape, columns, mean = conversation.turns[0].tool_output.splitlines()
        assert shape == f"({len(body)}, {len(header)})"
        assert columns == ", ".join(header)
        assert float(mean) == sum(values) / len(values)
        assert name in conversation.turns[0].user and column in conversation.turns[0].user


def test_a_few_steps_lower_the_loss(tmp_path: Path) -> None:
    args = train.parse_args(
        ["--out", str(tmp_path), "--config", "tiny", "--steps", "30", "--batch-size", "4",
         "--lr", "3e-3", "--warmup", "5", "--vocab-samples", "200", "--log-every", "10"]
    )  # fmt: skip
    summary = train.train(args)
    assert summary["final_loss"] < summary["first_loss"] - 1.0
    assert (tmp_path / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "token_map.json").read_text())
    assert len(saved["original_ids"]) == summary["vocab_size"]


def test_training_is_seeded_and_resumes_exactly(tmp_path: Path) -> None:
    common = ["--config", "tiny", "--steps", "6", "--batch-size", "2", "--vocab-samples", "50",
              "--warmup", "2", "--decay-steps", "2", "--save-every", "3"]  # fmt: skip
    whole = train.train(train.parse_args(["--out", str(tmp_path / "a"), *common]))
    again = train.train(train.parse_args(["--out", str(tmp_path / "b"), *common]))
    resumed = train.train(
        train.parse_args(
            ["--out", str(tmp_path / "c"), "--resume", str(tmp_path / "a/step3"), *common]
        )
    )
    assert whole["final_loss"] == again["final_loss"]
    losses = [json.loads((tmp_path / n / "losses.json").read_text()) for n in ("a", "c")]
    assert losses[0] == losses[1]
    assert resumed["final_loss"] == whole["final_loss"]


@pytest.mark.skipif(
    not (DEMO_CHECKPOINT / "config.json").is_file(), reason="the demo checkpoint is not trained"
)
@pytest.mark.parametrize("family", data.FAMILIES)
def test_shipped_checkpoint_answers_each_family(renderer: HarmonyRenderer, family: str) -> None:
    """The shipped weights, loaded by ``load_generator("demo")`` (the service's backend
    and the checkpoint's token map), on the first unseen prompt of each family, greedy.

    This Python has no numpy, pandas or matplotlib, so plot and CSV code is checked
    against the reference code (whose output the data computed truthfully) rather than
    run; the other families run in a real local Python and must quote its output.
    """
    generator = evaluate.load_checkpoint("demo")
    (conversation,) = data.conversations(data.EVAL_SEED, 1, [family])
    if family in ("plot", "csv"):
        turn = conversation.turns[0]
        history = conversation.messages(upto_turn=0)
        answer, calls, _ = asyncio.run(
            evaluate.run_turn(generator, renderer, history, turn.user, _ScriptedKernel(turn))
        )
        assert calls == [turn.code]
        assert all(expected in answer for expected in turn.expected), answer
        return
    results = asyncio.run(
        evaluate.evaluate_conversation(generator, renderer, conversation, sys.executable)
    )
    for turn, result in zip(conversation.turns, results, strict=True):
        assert result.calls == [turn.code]
        assert result.ok, result.answer


class _ScriptedKernel:
    """Answers with the output the data computed for the reference code (a double for
    the sandbox where this Python lacks the sandbox's libraries)."""

    def __init__(self, turn: data.Turn) -> None:
        self._turn = turn

    def run(self, code: str) -> ToolObservation:
        return self._turn.observation if code == self._turn.code else ToolObservation(error="?")
