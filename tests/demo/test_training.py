"""The demo model's data and trainer: conversations are valid harmony whose tool outputs
are what Python really prints, the evaluation's phrasings stay out of training, the
training attention is the served attention, and a few training steps on a tiny model
lower the loss and resume exactly.

No Docker: the code runs in a local Python process (``model_runner.demo.local_kernel``),
the same stand-in the offline evaluator uses.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import random
import re
import subprocess
import sys
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest
import torch
from openai_harmony import Role
from transformers import DynamicCache, GptOssConfig, GptOssForCausalLM

from model_runner.demo import data, evaluate, heldout, train
from model_runner.harmony import HarmonyRenderer, format_tool_output

# Families whose code needs only the standard library (this Python has no pandas).
STDLIB_FAMILIES = ("arithmetic", "state", "primes_fib", "file", "stats", "dates", "words")
NO_PANDAS = data.Mix(
    weights={k: v for k, v in data.Mix().weights.items() if k not in ("csv", "plot")},
    hand_cell_rate=0.4,
)


def normalised(template: str) -> str:
    """A phrasing as casual typing could turn it: lower case, no closing punctuation."""
    return re.sub(r"[\s.?!]+$", "", template.strip().lower())


@pytest.fixture(scope="module")
def renderer() -> HarmonyRenderer:
    return HarmonyRenderer()


def _samples() -> list[data.Conversation]:
    rng = random.Random(7)
    mixed = [data.mixed_conversation(rng, n, mix=data.Mix(hand_cell_rate=0.5)) for n in (1, 6, 12)]
    truncated = dataclasses.replace(mixed[-1], hidden_turns=4)
    # Instructions (a developer message) whatever the seed drew.
    instructed = dataclasses.replace(mixed[1], instructions=data.INSTRUCTIONS[0])
    return [
        *mixed,
        truncated,
        instructed,
        *data.conversations(data.EVAL_SEED, len(data.FAMILIES)),
    ]


def test_conversations_parse_back_and_only_the_assistants_messages_are_learnt(
    renderer: HarmonyRenderer,
) -> None:
    samples = _samples()
    assert any(turn.cells for c in samples for turn in c.turns), "no hand cell drawn"
    assert any(turn.code is None for c in samples for turn in c.turns), "no out-of-scope turn"
    for conversation in samples:
        example = data.render_example(renderer, conversation)
        parsed = renderer.encoding.parse_messages_from_completion_tokens(example.tokens, None)
        # System and developer messages parse back as plain text; the rest exactly.
        skip = 2 if conversation.instructions else 1
        assert [m.author.role for m in parsed[:skip]] == [Role.SYSTEM, Role.DEVELOPER][:skip]
        assert parsed[skip:] == conversation.messages()[skip:]
        # The loss covers the assistant's own messages: not the prompt's, not a hand
        # cell's, and not an earlier turn's replayed <|end|>.
        learnt = renderer.decode(
            [t for t, m in zip(example.tokens, example.mask, strict=True) if m]
        )
        expected = "".join(
            (f" to=python<|channel|>analysis code<|message|>{t.code}<|call|>" if t.code else "")
            + f"<|channel|>final<|message|>{t.answer}"
            for t in conversation.turns[conversation.hidden_turns :]
        )
        assert learnt == expected + "<|return|>"


def test_the_fast_message_encoder_renders_as_harmony_does(renderer: HarmonyRenderer) -> None:
    encoder = data.MessageEncoder(renderer)
    messages = [m for c in _samples() for m in c.messages()]
    assert len({m.author.role for m in messages}) == 5  # system, developer, user, assistant, tool
    for message in messages:
        assert encoder(message) == renderer.encoding.render(message)


def test_a_truncated_conversation_shows_its_later_turns_only() -> None:
    (conversation,) = [c for c in _samples() if c.hidden_turns]
    shown = [m for m in conversation.messages() if m.author.role == Role.USER]
    users = [m.content[0].text for m in shown]  # type: ignore[union-attr]
    assert users == [t.user for t in conversation.turns[4:]]


def test_training_never_sees_the_evaluations_phrasings() -> None:
    held_out = {normalised(t) for templates in heldout.PHRASINGS.values() for t in templates}
    # Not even as casual typing turns them (lower case, no full stop), in any family.
    assert not held_out & {normalised(t) for ts in data.PHRASINGS.values() for t in ts}
    for family in data.FAMILIES:
        keys = [k for k in data.PHRASINGS if k.startswith(f"{family}.")]
        assert sum(len(data.PHRASINGS[k]) for k in keys) >= 8, family
        assert sum(len(heldout.PHRASINGS[k]) for k in keys) >= 4, family
    assert len(set(heldout.OUT_OF_SCOPE)) == 50
    rng = random.Random(0)
    drawn = {data.out_of_scope_prompt(rng) for _ in range(20000)}
    assert not drawn & set(heldout.OUT_OF_SCOPE)
    # The trainer never even imports the held-out set.
    probe = "import sys, model_runner.demo.train; print('model_runner.demo.heldout' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert imported.stdout.strip() == "False", imported.stderr


@pytest.mark.parametrize("family", STDLIB_FAMILIES)
def test_tool_outputs_are_what_python_prints(family: str) -> None:
    """The families whose code needs only the standard library, run for real."""
    for conversation in data.conversations(11, 6, [family]):
        _replay(conversation)


def test_mixed_conversations_with_hand_cells_run_as_written() -> None:
    rng = random.Random(3)
    conversation = data.mixed_conversation(rng, 12, mix=NO_PANDAS)
    assert any(turn.cells for turn in conversation.turns)
    _replay(conversation)


def _replay(conversation: data.Conversation) -> None:
    kernel = evaluate.LocalKernel(sys.executable, conversation.files)
    try:
        for turn in conversation.turns:
            for cell in turn.cells:
                assert kernel.run(cell.code).text == cell.logs
            if turn.code is None:
                continue
            observation = kernel.run(turn.code)
            assert format_tool_output(observation) == turn.tool_output
            result = evaluate.TurnResult(False, turn.answer, [turn.code], images=observation.images)
            assert evaluate.check_turn(turn, result, kernel)
    finally:
        kernel.close()


def test_csv_summaries_match_the_files() -> None:
    for conversation in data.conversations(5, 12, ["csv"]):
        ((name, text),) = conversation.files.items()
        (turn,) = conversation.turns
        rows = list(csv.reader(io.StringIO(text)))
        header, body = rows[0], rows[1:]
        column = turn.code.split('df["')[1].split('"')[0] if turn.code else ""
        values = [Decimal(row[header.index(column)]) for row in body]
        mean = (sum(values) / len(values)).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
        shape, columns, printed = turn.tool_output.splitlines()
        assert 2 <= len(body) <= 1000
        assert shape == f"({len(body)}, {len(header)})"
        assert columns == ", ".join(header)
        assert float(printed) == float(mean)
        assert name in turn.user and column in turn.user


def test_the_out_of_scope_answer_is_exact_and_runs_nothing() -> None:
    turn = data.out_of_scope(random.Random(0), "Hello!")
    kernel = evaluate.LocalKernel(sys.executable, {})
    try:
        ok = evaluate.TurnResult(False, data.CANNOT_DO)
        assert evaluate.check_turn(turn, ok, kernel)
        assert not evaluate.check_turn(turn, dataclasses.replace(ok, calls=["print(1)"]), kernel)
        assert not evaluate.check_turn(turn, dataclasses.replace(ok, answer="Hello!"), kernel)
    finally:
        kernel.close()
    assert "INTERPRETER_MODEL=openai/gpt-oss-20b" in data.CANNOT_DO


def test_truncation_drops_the_oldest_whole_turns(
    renderer: HarmonyRenderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation = data.mixed_conversation(random.Random(1), 12)
    prefix = conversation.prefix()
    turns = [[m for m, _ in conversation.turn_messages(i)] for i in range(12)]
    whole = renderer.render_prompt(prefix + [m for t in turns for m in t])
    monkeypatch.setattr(evaluate, "CONTEXT", len(whole) + evaluate.MAX_TOKENS_PER_MESSAGE)
    assert evaluate.truncate(renderer, prefix, turns) == whole
    monkeypatch.setattr(evaluate, "CONTEXT", len(whole) + evaluate.MAX_TOKENS_PER_MESSAGE - 1)
    shorter = evaluate.truncate(renderer, prefix, turns)
    assert shorter == renderer.render_prompt(prefix + [m for t in turns[1:] for m in t])


def test_blocked_attention_is_the_served_attention(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outputs and gradients of the training attention equal eager attention's (what
    the checkpoint is served with), sinks, sliding window and cached prefix included."""
    monkeypatch.setattr(train, "_QUERY_BLOCK", 8)
    config = GptOssConfig(
        vocab_size=50, hidden_size=32, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, num_local_experts=2,
        num_experts_per_tok=1, sliding_window=12, max_position_embeddings=128,
        layer_types=[train.SLIDING, train.FULL],
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )  # fmt: skip
    torch.manual_seed(0)
    model = GptOssForCausalLM(config)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.sinks.normal_()
    prefix, tokens = torch.randint(0, 50, (1, 7)), torch.randint(0, 50, (3, 30))

    def run(implementation: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.config._attn_implementation = implementation
        model.zero_grad()
        cache = DynamicCache(config=model.config)
        model.model(input_ids=prefix, cache=cache, use_cache=True)
        cache.batch_repeat_interleave(3)
        out = model.model(input_ids=tokens, cache=cache, use_cache=True).last_hidden_state
        out.pow(2).sum().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    eager, eager_grads = run("eager")
    blocked, blocked_grads = run(train.TRAINING_ATTENTION)
    torch.testing.assert_close(blocked, eager, rtol=1e-5, atol=1e-5)
    for got, want in zip(blocked_grads, eager_grads, strict=True):
        # Relative to the tensor's scale: summation order differs, and an element that
        # is a difference of large terms keeps only absolute precision.
        assert (got - want).abs().max() <= 1e-4 * want.abs().max()


TINY = ["--config", "tiny", "--conversations", "3", "--vocab-samples", "100", "--log-every", "10"]


def test_a_few_steps_lower_the_loss(tmp_path: Path) -> None:
    args = train.parse_args(
        ["--out", str(tmp_path), *TINY, "--steps", "30", "--lr", "3e-3", "--warmup", "5"]
    )
    summary = train.train(args)
    assert summary["final_loss"] < summary["first_loss"] - 1.0
    assert (tmp_path / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "token_map.json").read_text())
    assert len(saved["original_ids"]) == summary["vocab_size"]
    # Served with the standard attention: nothing of the trainer's leaks into the config.
    assert train.TRAINING_ATTENTION not in (tmp_path / "config.json").read_text()


def test_training_is_seeded_and_resumes_exactly(tmp_path: Path) -> None:
    common = [*TINY, "--steps", "6", "--conversations", "2", "--warmup", "2",
              "--decay-steps", "2", "--save-every", "3"]  # fmt: skip
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


def test_frame_words_are_hidden_at_their_own_rate(renderer: HarmonyRenderer) -> None:
    token_map = train.build_token_map(renderer, data.TRAIN_SEED, samples=200)
    frame = train.frame_tokens(renderer, token_map)

    def compact(text: str) -> int:
        (original,) = renderer.encoding.encode(text, allowed_special=set())
        return token_map.to_compact([original])[0]

    # Words many requests write are frame words; those that tell requests apart are not.
    assert {compact(w) for w in ("What", " the", " of", "?")} <= frame
    assert not {compact(w) for w in (" median", " primes", " cube", " weekday")} & frame

    sampler = train.BatchSampler(
        renderer, token_map, seed=3, conversations=4, unknown_rate=0.0, frame_unknown_rate=1.0
    )
    rows = [sampler._row(sampler.conversation()) for _ in range(8)]
    hidden_frame = 0
    for row in rows:
        copied = {t for t, learnt in zip(row.tokens, row.mask, strict=True) if learnt}
        noisy = sampler._noisy(row)
        for token, shown, user in zip(row.tokens, noisy, row.replaceable, strict=True):
            frame_word = user and token in frame and token not in copied
            assert shown == (sampler.unknown if frame_word else token)
            hidden_frame += frame_word
    assert hidden_frame > 0
