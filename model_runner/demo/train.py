"""Train the demo model: a small GptOssForCausalLM on synthetic tool-use conversations.

    python -m model_runner.demo.train --out DIR --steps N --seed S [--config tiny|demo]

Prints the loss as it goes and a JSON summary at the end. Seeded: the same command gives
the same weights on the same machine (torch's CPU kernels are deterministic here).

Two things keep a step cheap on a CPU:
- the vocabulary is cut to the tokens the tasks use (plus every 1-3 digit number and
  the most common o200k tokens), with ``token_map.json`` saying which original id each
  compact id is;
- every conversation of a batch shares one system message (the ~190 tokens that are most
  of every sequence), which is run once at batch size 1 and its keys and values reused
  by the whole batch, gradients included.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import DynamicCache, GptOssConfig, GptOssForCausalLM

from model_runner.demo import data
from model_runner.harmony import HarmonyRenderer
from model_runner.token_map import TokenMap

# The unknown id: a prompt token the model has never seen reads as <|endoftext|>, which
# the harmony format never uses, so it cannot be mistaken for structure.
UNKNOWN_ORIGINAL_ID = 199999
# Ids below this in o200k are its earliest, most common merges (ASCII words, spaces,
# punctuation): with them, a user's unseen phrasing still reads as mostly known tokens.
COMMON_TOKENS_BELOW = 3000
HARMONY_SPECIALS = ("<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>",
                    "<|return|>", "<|call|>")  # fmt: skip

CONFIGS: dict[str, dict[str, Any]] = {
    # CI: seconds per hundred steps.
    "tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                 num_local_experts=2, num_experts_per_tok=1),
    # The shipped model.
    "demo": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                 num_local_experts=4, num_experts_per_tok=2),
}  # fmt: skip
MAX_POSITIONS = 2048
SLIDING_WINDOW = 128


def build_token_map(renderer: HarmonyRenderer, seed: int, samples: int = 6000) -> TokenMap:
    """Every id the training conversations use, the harmony specials, all 1-3 digit
    numbers (o200k splits digit runs into groups of up to three), and common tokens."""
    encoding = renderer.encoding
    used: set[int] = set(range(COMMON_TOKENS_BELOW))
    for special in HARMONY_SPECIALS:
        used.update(encoding.encode(special, allowed_special="all"))
    for width in (1, 2, 3):
        for n in range(10**width):
            ids = encoding.encode(f"{n:0{width}d}", allowed_special=set())
            assert len(ids) == 1, f"{n:0{width}d} is not one token"
            used.update(ids)
    for conversation in data.conversations(seed, samples):
        used.update(renderer.render_training(conversation.messages())[0])
    return TokenMap.covering(used, UNKNOWN_ORIGINAL_ID)


def build_model(config_name: str, token_map: TokenMap, renderer: HarmonyRenderer, seed: int):
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


@dataclasses.dataclass
class Batch:
    prefix: torch.Tensor  # (1, P): the shared system message
    tokens: torch.Tensor  # (B, T): the rest of each conversation, right-padded
    targets: torch.Tensor  # (B, T-1): the next token where the assistant wrote it, else -100


class BatchSampler:
    """Draws batches of fresh conversations from one seeded stream."""

    def __init__(
        self,
        renderer: HarmonyRenderer,
        token_map: TokenMap,
        seed: int,
        batch_size: int,
        families: Sequence[str] = data.FAMILIES,
    ) -> None:
        self.renderer = renderer
        self.token_map = token_map
        self.rng = random.Random(seed)
        self.batch_size = batch_size
        self.families = families
        self.pad = token_map.to_compact([UNKNOWN_ORIGINAL_ID])[0]

    def next(self) -> Batch:
        conversations = [
            data.GENERATORS[self.rng.choice(self.families)](self.rng)
            for _ in range(self.batch_size)
        ]
        # One system message for the batch (its date and effort drawn like any other).
        system = conversations[0].system
        prefix = self.renderer.encoding.render(system.to_message())
        rows = []
        for conversation in conversations:
            conversation = dataclasses.replace(conversation, system=system)
            messages = conversation.messages()[1:]
            example = data.TrainingExample(
                *self.renderer.render_training(messages), conversation.family
            )
            data.mask_replayed_ends(self.renderer, example)
            rows.append(example)
        width = max(len(r.tokens) for r in rows)
        tokens = torch.full((len(rows), width), self.pad, dtype=torch.long)
        targets = torch.full((len(rows), width - 1), -100, dtype=torch.long)
        for i, row in enumerate(rows):
            compact = torch.tensor(self.token_map.to_compact(row.tokens))
            tokens[i, : len(compact)] = compact
            wanted = torch.tensor(row.mask[1:])
            targets[i, : len(compact) - 1] = torch.where(wanted, compact[1:], -100)
        return Batch(torch.tensor([self.token_map.to_compact(prefix)]), tokens, targets)


def batch_loss(model: GptOssForCausalLM, batch: Batch) -> torch.Tensor:
    """Mean cross-entropy over the assistant's tokens, with the system prefix run once."""
    cache = DynamicCache(config=model.config)
    model.model(input_ids=batch.prefix, cache=cache, use_cache=True)
    cache.batch_repeat_interleave(batch.tokens.shape[0])
    hidden = model.model(input_ids=batch.tokens, cache=cache, use_cache=True)
    states = hidden.last_hidden_state[:, :-1]
    wanted = batch.targets != -100
    # Logits only where the loss is taken: a third of the positions, and the output
    # layer is the largest matmul of a model this small.
    logits = model.lm_head(states[wanted])
    return torch.nn.functional.cross_entropy(logits, batch.targets[wanted])


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
    model.save_pretrained(out)
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


def train(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    renderer = HarmonyRenderer()
    token_map = build_token_map(renderer, data.TRAIN_SEED, args.vocab_samples)
    model = build_model(args.config, token_map, renderer, args.seed)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"config={args.config} vocab={token_map.vocab_size} parameters={parameters}", flush=True)
    sampler = BatchSampler(renderer, token_map, args.seed, args.batch_size)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01
    )
    losses: list[tuple[int, float]] = []
    start = 0
    if args.resume:
        # Same config, seed and token map, so only the weights and the state differ.
        model = GptOssForCausalLM.from_pretrained(args.resume)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01
        )
        state = torch.load(args.resume / TRAINER_STATE, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        sampler.rng.setstate(state["sampler_rng"])
        start, losses = state["step"] + 1, [tuple(x) for x in state["losses"]]
        print(f"resumed from {args.resume} at step {start}", flush=True)
    model.train()
    started = time.monotonic()
    running = None
    for step in range(start, args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr, args.warmup, args.decay_steps)
        loss = batch_loss(model, sampler.next())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        value = loss.item()
        running = value if running is None else 0.95 * running + 0.05 * value
        losses.append((step, value))
        if step % args.log_every == 0 or step == args.steps - 1:
            elapsed = time.monotonic() - started
            print(
                f"step {step} loss {value:.4f} avg {running:.4f} "
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
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", choices=tuple(CONFIGS), default="demo")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--decay-steps", type=int, default=600, help="final steps of lr decay")
    parser.add_argument("--resume", type=Path, help="a snapshot (step folder) to continue from")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--vocab-samples", type=int, default=6000, help="conversations scanned for the vocabulary"
    )
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--save-every", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
