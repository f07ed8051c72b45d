"""Train the demo model: a small GptOssForCausalLM on synthetic tool-use conversations.

    python -m model_runner.demo.train --out DIR --steps N --seed S [--config tiny|demo]

Prints the loss as it goes and a JSON summary at the end. Seeded: the same command gives
the same weights on the same machine (torch's CPU kernels are deterministic here).

A step is ``--conversations`` fresh mixed conversations of 1 to 12 turns. Three things
keep it cheap on a CPU:
- the vocabulary is cut to the tokens the training data uses (plus every 1-3 digit number
  and harmony's special tokens), with ``token_map.json`` saying which original id each
  compact id is;
- the step's conversations share one system message (~170 tokens), run once at batch
  size 1 with its keys and values reused by every row, gradients included; the rows are
  sorted by length into micro-batches of at most ``--tokens-per-batch`` tokens, so little
  is padding;
- attention is computed per block of queries over only the keys the block can see
  (``blocked_attention``), so a sliding layer costs the window, not the whole
  conversation. It is the same function as the eager attention the checkpoint is served
  with, sinks included (``tests/demo`` checks it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AttentionInterface, DynamicCache, GptOssConfig, GptOssForCausalLM

from model_runner.demo import data
from model_runner.harmony import HarmonyRenderer
from model_runner.token_map import TokenMap

# The unknown id: a prompt token the model has never seen reads as <|endoftext|>, which
# the harmony format never uses, so it cannot be mistaken for structure.
UNKNOWN_ORIGINAL_ID = 199999
HARMONY_SPECIALS = ("<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>",
                    "<|return|>", "<|call|>")  # fmt: skip

SLIDING, FULL = "sliding_attention", "full_attention"
CONFIGS: dict[str, dict[str, Any]] = {
    # CI: seconds per hundred steps.
    "tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                 num_local_experts=2, num_experts_per_tok=1, layer_types=[SLIDING, FULL]),
    # The shipped model.
    "demo": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                 num_local_experts=4, num_experts_per_tok=2,
                 layer_types=[SLIDING, FULL, SLIDING, FULL]),
}  # fmt: skip
MAX_POSITIONS = 2048
SLIDING_WINDOW = 256
# The longest conversation trained on: the service truncates longer ones (oldest turns
# first) to fit the context with room for an answer, and so does the sampler.
MAX_TRAINING_TOKENS = 1800
MAX_TURNS = 12

# -- attention for training ---------------------------------------------------------------

TRAINING_ATTENTION = "demo_blocked"
_QUERY_BLOCK = 128


def blocked_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    sliding_window: int | None = None,
    s_aux: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """gpt-oss's eager attention (causal, optional sliding window, a learnt sink logit
    per head) computed per block of queries over only the keys that block can see.

    Eager attention scores every query against every key and masks most of them away,
    which makes a 2,000-token conversation cost 60 times a 250-token one in a sliding
    layer. Rows are right-padded, so causal masking alone keeps padding out of real
    tokens; ``attention_mask`` is not needed. The keys may start with a cached prefix.
    """
    batch, heads, length, _ = query.shape
    total = key.shape[2]
    offset = total - length  # the cached prefix's length
    groups = heads // key.shape[1]
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    assert s_aux is not None
    sinks = s_aux.reshape(1, heads, 1, 1)
    outputs = []
    for start in range(0, length, _QUERY_BLOCK):
        stop = min(length, start + _QUERY_BLOCK)
        high = offset + stop
        low = 0 if sliding_window is None else max(0, offset + start - sliding_window + 1)
        scores = torch.matmul(query[:, :, start:stop], key[:, :, low:high].transpose(2, 3))
        scores = scores * scaling
        query_positions = torch.arange(offset + start, offset + stop).reshape(-1, 1)
        key_positions = torch.arange(low, high).reshape(1, -1)
        visible = key_positions <= query_positions
        if sliding_window is not None:
            visible &= key_positions > query_positions - sliding_window
        scores = scores.masked_fill(~visible, float("-inf"))
        logits = torch.cat([scores, sinks.expand(batch, heads, stop - start, 1)], dim=-1)
        logits = logits - logits.max(dim=-1, keepdim=True).values.detach()
        probs = torch.softmax(logits, dim=-1)[..., :-1]  # the sink takes weight, gives none
        outputs.append(torch.matmul(probs, value[:, :, low:high]))
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None


AttentionInterface.register(TRAINING_ATTENTION, blocked_attention)


# -- vocabulary and model -------------------------------------------------------------------


def build_token_map(renderer: HarmonyRenderer, seed: int, samples: int = 10000) -> TokenMap:
    """Every id the training conversations use, the harmony specials and all 1-3 digit
    numbers (o200k splits digit runs into groups of up to three)."""
    encoding = renderer.encoding
    used: set[int] = set()
    for special in HARMONY_SPECIALS:
        used.update(encoding.encode(special, allowed_special="all"))
    for width in (1, 2, 3):
        for n in range(10**width):
            ids = encoding.encode(f"{n:0{width}d}", allowed_special=set())
            assert len(ids) == 1, f"{n:0{width}d} is not one token"
            used.update(ids)
    # Every name a generator can draw, in the forms the prompts and answers write it.
    for name in (*data.WORDS, *data.VARIABLES, *data.CSV_FILES, *data.CSV_COLUMNS,
                 *data.FILE_NAMES, *data.FILE_KINDS):  # fmt: skip
        for form in (name, name.capitalize()):
            for text in (form, f" {form}", f'"{form}', f' "{form}', f"'{form}", f"({form}"):
                used.update(encoding.encode(text, allowed_special=set()))
    rng = random.Random(seed)
    encoder = data.MessageEncoder(renderer)
    for _ in range(samples):
        conversation = data.mixed_conversation(rng, rng.randint(1, 4))
        for message in conversation.messages():
            used.update(encoder(message))
    return TokenMap.covering(used, UNKNOWN_ORIGINAL_ID)


def build_model(
    config_name: str, token_map: TokenMap, renderer: HarmonyRenderer, seed: int
) -> GptOssForCausalLM:
    torch.manual_seed(seed)
    compact = token_map.to_compact
    config = GptOssConfig(
        vocab_size=token_map.vocab_size,
        max_position_embeddings=MAX_POSITIONS,
        sliding_window=SLIDING_WINDOW,
        tie_word_embeddings=True,
        # The default is YaRN scaled for 131k contexts; assigning it after construction
        # does not take effect.
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        pad_token_id=compact([UNKNOWN_ORIGINAL_ID])[0],
        eos_token_id=compact(sorted(renderer.stop_tokens)),
        bos_token_id=None,
        **CONFIGS[config_name],
    )
    return GptOssForCausalLM(config)


# -- batches --------------------------------------------------------------------------------


@dataclasses.dataclass
class Batch:
    prefix: torch.Tensor  # (1, P): the shared system message
    tokens: torch.Tensor  # (B, T): the rest of each conversation, right-padded
    targets: torch.Tensor  # (B, T-1): the next token where the assistant wrote it, else -100


@dataclasses.dataclass
class Step:
    batches: list[Batch]
    conversations: int
    target_tokens: int  # tokens in the loss, over all batches


@dataclasses.dataclass(frozen=True)
class Row:
    tokens: list[int]
    mask: list[bool]
    replaceable: list[bool]  # a user's word the unknown-token noise may hide


_SLOT = re.compile(r"\{[a-z0-9]+\}")


def frame_tokens(
    renderer: HarmonyRenderer, token_map: TokenMap, max_keys: int = 3
) -> frozenset[int]:
    """The compact ids of the training phrasings' frame words: those written in the
    phrasings of more than ``max_keys`` requests ("What", " the", " of", "?"), as opposed
    to the words few requests use ("median", " primes", " cubed"), which tell them
    apart. Words no phrasing writes (names, months, out-of-scope topics) are not frame."""
    encode = renderer.encoding.encode
    keys_of: dict[int, set[str]] = {}
    for key, templates in data.PHRASINGS.items():
        for template in templates:
            for fragment in _SLOT.split(template):
                for token in encode(fragment, allowed_special=set()):
                    keys_of.setdefault(token, set()).add(key)
    frame = [token for token, keys in keys_of.items() if len(keys) > max_keys]
    return frozenset(t for t in token_map.to_compact(frame) if t != token_map.unknown_id)


class BatchSampler:
    """Draws each step's conversations from one seeded stream and lays them out."""

    def __init__(
        self,
        renderer: HarmonyRenderer,
        token_map: TokenMap,
        seed: int,
        conversations: int,
        tokens_per_batch: int = 6000,
        unknown_rate: float = 0.04,
        truncated_rate: float = 0.2,
        frame_unknown_rate: float | None = None,
    ) -> None:
        self.renderer = renderer
        self.token_map = token_map
        self.rng = random.Random(seed)
        self.conversations = conversations
        self.tokens_per_batch = tokens_per_batch
        self.unknown_rate = unknown_rate
        self.truncated_rate = truncated_rate
        # A request's frame words ("What", "the", "please") may be hidden more often than
        # the words that tell its task apart ("median", "primes"): see frame_tokens.
        self.frame_unknown_rate = unknown_rate if frame_unknown_rate is None else frame_unknown_rate
        self.frame = (
            frame_tokens(renderer, token_map)
            if self.frame_unknown_rate != unknown_rate
            else frozenset()
        )
        self.unknown = token_map.unknown_id
        self.pad = self.unknown
        self.encoder = data.MessageEncoder(renderer)

    def conversation(self) -> data.Conversation:
        """A mixed conversation of 1 to 12 turns whose visible part fits the context;
        some start later than their first turn, as truncation leaves them."""
        rng = self.rng
        n_turns = rng.randint(1, MAX_TURNS)
        conversation = data.mixed_conversation(rng, n_turns)
        hidden = 0
        if n_turns >= 3 and rng.random() < self.truncated_rate:
            hidden = rng.randint(1, n_turns - 2)
        length = sum(len(self.encoder(m)) for m in conversation.prefix())
        turns = [
            sum(len(self.encoder(m)) for m, _ in conversation.turn_messages(i))
            for i in range(n_turns)
        ]
        while length + sum(turns[hidden:]) > MAX_TRAINING_TOKENS and hidden < n_turns - 1:
            hidden += 1
        return dataclasses.replace(conversation, hidden_turns=hidden)

    def _row(self, conversation: data.Conversation) -> Row:
        labelled = conversation.labelled_messages()[1:]  # the system message is the prefix
        tokens, mask, user = data.render_labelled(self.renderer, labelled, self.encoder)
        return Row(self.token_map.to_compact(tokens), mask, user)

    def _noisy(self, row: Row) -> list[int]:
        """Hide a few of the user's words behind the unknown id, never one the assistant
        copies, so an unseen word in a request reads as a gap, not as nonsense."""
        if not self.unknown_rate and not self.frame_unknown_rate:
            return row.tokens
        copied = {t for t, learnt in zip(row.tokens, row.mask, strict=True) if learnt}
        out = list(row.tokens)
        for i, token in enumerate(out):
            if row.replaceable[i] and token not in copied:
                rate = self.frame_unknown_rate if token in self.frame else self.unknown_rate
                if self.rng.random() < rate:
                    out[i] = self.unknown
        return out

    def next(self) -> Step:
        conversations = [self.conversation() for _ in range(self.conversations)]
        # One system message for the step (its date and effort drawn like any other).
        system = conversations[0].system
        prefix = torch.tensor(
            [self.token_map.to_compact(self.renderer.encoding.render(system.to_message()))]
        )
        rows = [self._row(dataclasses.replace(c, system=system)) for c in conversations]
        noisy = [self._noisy(row) for row in rows]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i].tokens))
        batches: list[Batch] = []
        group: list[int] = []
        for index in order:
            width = len(rows[index].tokens)
            if group and width * (len(group) + 1) > self.tokens_per_batch:
                batches.append(
                    self._batch(prefix, [rows[i] for i in group], [noisy[i] for i in group])
                )
                group = []
            group.append(index)
        batches.append(self._batch(prefix, [rows[i] for i in group], [noisy[i] for i in group]))
        targets = sum(int((b.targets != -100).sum()) for b in batches)
        return Step(batches, len(conversations), targets)

    def _batch(self, prefix: torch.Tensor, rows: list[Row], inputs: list[list[int]]) -> Batch:
        width = max(len(r.tokens) for r in rows)
        tokens = torch.full((len(rows), width), self.pad, dtype=torch.long)
        targets = torch.full((len(rows), width - 1), -100, dtype=torch.long)
        for i, (row, noisy) in enumerate(zip(rows, inputs, strict=True)):
            tokens[i, : len(noisy)] = torch.tensor(noisy)
            # Targets are the clean tokens: the noise only ever hides inputs.
            clean = torch.tensor(row.tokens)
            wanted = torch.tensor(row.mask[1:])
            targets[i, : len(clean) - 1] = torch.where(wanted, clean[1:], -100)
        return Batch(prefix, tokens, targets)


def batch_loss_sum(model: GptOssForCausalLM, batch: Batch) -> torch.Tensor:
    """Summed cross-entropy over the assistant's tokens, with the system prefix run once."""
    cache = DynamicCache(config=model.config)
    model.model(input_ids=batch.prefix, cache=cache, use_cache=True)
    cache.batch_repeat_interleave(batch.tokens.shape[0])
    hidden = model.model(input_ids=batch.tokens, cache=cache, use_cache=True)
    states = hidden.last_hidden_state[:, :-1]
    wanted = batch.targets != -100
    # Logits only where the loss is taken: the output layer is the largest matmul of a
    # model this small.
    logits = model.lm_head(states[wanted])
    return torch.nn.functional.cross_entropy(logits, batch.targets[wanted], reduction="sum")


def learning_rate(step: int, steps: int, peak: float, warmup: int, decay_steps: int) -> float:
    """Warm-up, stable, decay: linear warm-up, the peak while copying emerges, then a
    cosine decay to a tenth of the peak over the last ``decay_steps``, which is where
    exact copies get reliable. Until the decay starts the rate does not depend on
    ``steps``, so a run can be resumed from a stable-phase snapshot with another end."""
    if step < warmup:
        return peak * (step + 1) / warmup
    decay_start = max(warmup, steps - decay_steps)
    if step < decay_start:
        return peak
    progress = (step - decay_start) / max(1, steps - decay_start)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def save_checkpoint(model: GptOssForCausalLM, token_map: TokenMap, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # Served with eager attention: the same function, without the training shortcut.
    model.config._attn_implementation = "eager"
    model.save_pretrained(out)
    model.config._attn_implementation = TRAINING_ATTENTION
    token_map.save(out)


TRAINER_STATE = "trainer_state.pt"


def save_snapshot(
    model: GptOssForCausalLM,
    token_map: TokenMap,
    optimizer: torch.optim.Optimizer,
    sampler: BatchSampler,
    step: int,
    losses: list[tuple[int, float]],
    out: Path,
) -> None:
    """A checkpoint plus what resuming needs: the optimizer's moments and the data
    stream's position, so a resumed run continues exactly as the unbroken one would."""
    save_checkpoint(model, token_map, out)
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "sampler_rng": sampler.rng.getstate(),
        "losses": losses,
    }
    torch.save(state, out / TRAINER_STATE)


def _optimizer(model: GptOssForCausalLM, args: argparse.Namespace) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)


def train(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    renderer = HarmonyRenderer()
    token_map = build_token_map(renderer, data.TRAIN_SEED, args.vocab_samples)
    model = build_model(args.config, token_map, renderer, args.seed)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"config={args.config} vocab={token_map.vocab_size} parameters={parameters}", flush=True)
    sampler = BatchSampler(
        renderer,
        token_map,
        args.seed,
        args.conversations,
        args.tokens_per_batch,
        args.unknown_rate,
        frame_unknown_rate=args.frame_unknown_rate,
    )
    losses: list[tuple[int, float]] = []
    start = 0
    if args.resume:
        # Same config, seed and token map, so only the weights and the state differ.
        model = GptOssForCausalLM.from_pretrained(args.resume)
        state = torch.load(args.resume / TRAINER_STATE, weights_only=False)
        sampler.rng.setstate(state["sampler_rng"])
        start, losses = state["step"] + 1, [tuple(x) for x in state["losses"]]
        print(f"resumed from {args.resume} at step {start}", flush=True)
    optimizer = _optimizer(model, args)
    if args.resume:
        optimizer.load_state_dict(state["optimizer"])
    model.config._attn_implementation = TRAINING_ATTENTION
    model.train()
    started = time.monotonic()
    running = None
    for step in range(start, args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr, args.warmup, args.decay_steps)
        batch = sampler.next()
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for part in batch.batches:
            # The mean over the step's tokens, accumulated one micro-batch at a time.
            loss = batch_loss_sum(model, part) / batch.target_tokens
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        running = total if running is None else 0.95 * running + 0.05 * total
        losses.append((step, total))
        if step % args.log_every == 0 or step == args.steps - 1:
            elapsed = time.monotonic() - started
            print(
                f"step {step} loss {total:.4f} avg {running:.4f} "
                f"lr {optimizer.param_groups[0]['lr']:.2e} t {elapsed:.0f}s",
                flush=True,
            )
        if args.save_every and step and step % args.save_every == 0:
            save_snapshot(
                model, token_map, optimizer, sampler, step, losses, args.out / f"step{step}"
            )
    save_checkpoint(model, token_map, args.out)
    (args.out / "losses.json").write_text(json.dumps(losses))
    first = sum(v for _, v in losses[:10]) / min(10, len(losses))
    last = sum(v for _, v in losses[-10:]) / min(10, len(losses))
    summary: dict[str, Any] = {
        "config": args.config,
        "parameters": parameters,
        "vocab_size": token_map.vocab_size,
        "steps": args.steps,
        "seed": args.seed,
        "first_loss": first,
        "final_loss": last,
        "seconds": round(time.monotonic() - started, 1),
        "out": str(args.out),
    }
    print(json.dumps(summary), flush=True)
    return summary


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", choices=tuple(CONFIGS), default="demo")
    parser.add_argument("--conversations", type=int, default=12, help="conversations per step")
    parser.add_argument("--tokens-per-batch", type=int, default=6000)
    parser.add_argument("--unknown-rate", type=float, default=0.04)
    parser.add_argument(
        "--frame-unknown-rate",
        type=float,
        help="the rate for the phrasings' frame words (default: --unknown-rate)",
    )
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--decay-steps", type=int, default=600, help="final steps of lr decay")
    parser.add_argument("--resume", type=Path, help="a snapshot (step folder) to continue from")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--vocab-samples", type=int, default=10000, help="conversations scanned for the vocabulary"
    )
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--save-every", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
