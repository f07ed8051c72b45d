"""Export the demo checkpoint for llama.cpp, through llama.cpp's own gpt-oss converter.

    python -m model_runner.demo.export_gguf --llama-cpp SRC --out demo.gguf

``SRC`` is a llama.cpp source tree (``scripts/build_llama_server.sh`` keeps the one it
builds from). The converter wants what a real gpt-oss checkpoint has: the full 201,088-id
vocabulary, an untied output layer and o200k_harmony's tokenizer. This module writes
exactly that to a temporary folder and runs the converter on it:

- **Weights.** Every id of the demo's token map gets its trained embedding row; every
  other id gets the row of the map's unknown id. That is what the token map makes of an
  unknown id on the way in, so any prompt reads the same; and it gives those ids the
  unknown id's logit on the way out, one the model learnt never to pick (it was never
  a target), so greedy decoding picks the same tokens. The output layer is the same
  matrix, written out (the demo ties it to the embedding; llama.cpp's gpt-oss loader
  wants its own).
- **Tokenizer.** A byte-level BPE of the vendored o200k_base ranks (merges derived from
  the ranks), o200k's pre-tokenizer pattern and harmony's special tokens, the shape of
  gpt-oss's own ``tokenizer.json``; the converter recognises it as o200k ("gpt-4o").

Needs torch, transformers' ``tokenizers`` and numpy; imports the converter from ``SRC``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from model_runner.harmony import VOCAB_DIR, load_encoding
from model_runner.loading import DEMO_CHECKPOINT
from model_runner.token_map import TokenMap

FULL_VOCAB = 201088
FIRST_SPECIAL = 199998

#: o200k's pre-tokenizer, as tiktoken defines o200k_base.
O200K_PATTERN = "|".join(
    [
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"\p{N}{1,3}",
        r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
        r"\s*[\r\n]+",
        r"\s+(?!\S)",
        r"\s+",
    ]
)


def byte_level_alphabet() -> dict[int, str]:
    """GPT-2's map of bytes to printable characters, which byte-level BPE vocabularies
    are written in."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {byte: chr(char) for byte, char in zip(printable, chars, strict=True)}


def o200k_ranks() -> dict[bytes, int]:
    ranks = {}
    for line in (VOCAB_DIR / "o200k_base.tiktoken").read_text().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def tokenizer_json() -> dict[str, Any]:
    """o200k_harmony as a ``tokenizers`` byte-level BPE, with harmony's specials."""
    ranks = o200k_ranks()
    alphabet = byte_level_alphabet()

    def text(token: bytes) -> str:
        return "".join(alphabet[b] for b in token)

    merges = []
    for token, rank in ranks.items():
        # tiktoken merges, at each step, the adjacent pair whose result ranks first; a
        # merge list reproduces that if every way of making a token from two others is
        # listed, in the order of the token's rank.
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], f"{text(left)} {text(right)}"))
    encoding = load_encoding()
    specials = [
        {"id": i, "content": encoding.decode([i]), "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": True}
        for i in range(FIRST_SPECIAL, FULL_VOCAB)
    ]  # fmt: skip
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": specials,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": O200K_PATTERN},
                    "behavior": "Isolated",
                    "invert": False,
                },
                {
                    "type": "ByteLevel",
                    "add_prefix_space": False,
                    "trim_offsets": True,
                    "use_regex": False,
                },
            ],
        },
        "post_processor": None,
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": True,
            "use_regex": True,
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": True,
            "vocab": {text(token): rank for token, rank in ranks.items()},
            "merges": [merge[-1] for merge in sorted(merges)],
        },
    }


def write_full_checkpoint(source: Path, target: Path) -> None:
    """The demo checkpoint over the full vocabulary, untied, with a tokenizer."""
    import torch
    from safetensors.torch import load_file, save_file

    config = json.loads((source / "config.json").read_text())
    token_map = TokenMap.from_checkpoint(source)
    assert token_map is not None, "the demo checkpoint has a token map"
    weights = load_file(source / "model.safetensors")
    compact = weights["model.embed_tokens.weight"]
    unknown = token_map.unknown_id
    full = compact[unknown].repeat(FULL_VOCAB, 1)
    full[torch.tensor(token_map.original_ids)] = compact[: token_map.vocab_size]
    weights["model.embed_tokens.weight"] = full
    weights["lm_head.weight"] = full.clone()

    config.update(
        vocab_size=FULL_VOCAB,
        tie_word_embeddings=False,
        bos_token_id=FIRST_SPECIAL,
        eos_token_id=[200002, 199999, 200012],
        pad_token_id=199999,
        # llama.cpp's converter reads the rope base from the top level.
        rope_theta=config.get("rope_parameters", {}).get("rope_theta", 10000.0),
    )
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(config, indent=2))
    save_file(weights, target / "model.safetensors", metadata={"format": "pt"})
    (target / "tokenizer.json").write_text(json.dumps(tokenizer_json()))
    (target / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<|startoftext|>",
                "eos_token": "<|return|>",
                "pad_token": "<|endoftext|>",
                "model_max_length": config.get("max_position_embeddings", 2048),
            }
        )
    )


def export(llama_cpp: Path, out: Path, source: Path = DEMO_CHECKPOINT) -> None:
    with tempfile.TemporaryDirectory(prefix="demo-full-") as tmp:
        write_full_checkpoint(source, Path(tmp))
        env = {**os.environ, "PYTHONPATH": str(llama_cpp / "gguf-py"), "NO_LOCAL_GGUF": ""}
        subprocess.run(
            [sys.executable, str(llama_cpp / "convert_hf_to_gguf.py"), tmp,
             "--outfile", str(out), "--outtype", "f32"],
            check=True,
            env=env,
            cwd=llama_cpp,
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llama-cpp", type=Path, required=True, help="llama.cpp source tree")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT)
    args = parser.parse_args()
    export(args.llama_cpp, args.out, args.checkpoint)


if __name__ == "__main__":
    main()
