"""``LlamaCppGenerator``: gpt-oss served by llama.cpp's ``llama-server`` (a GGUF, on CPUs
and small GPUs).

Targets the llama.cpp server vendored in llama-cpp-python 0.3.36 (ggml-org/llama.cpp
0c1e57098) and its successors: ``POST /completion`` with the prompt as token ids,
``return_tokens`` and ``timings_per_token``, streamed. Each chunk carries one new id
(``tokens``), the last a ``stop`` flag; ``timings.cache_n`` is the prompt tokens taken
from the slot's cache.

Two habits of the server are handled here:
- it has no stop-token parameter: it ends on its vocabulary's end-of-generation tokens
  (for o200k_harmony <|return|>, <|call|> and <|endoftext|>; it takes <|end|> out of
  that set), and any other stop token the request names ends the stream client-side;
- a token that ends inside a UTF-8 character is never sent on its own: its text comes
  with the next chunk, whose ``tokens`` hold only the later id. A jump in
  ``tokens_predicted`` shows it, and the chunk's text is then re-encoded with harmony's
  vocabulary: the same text, so the same parse, though perhaps other ids.

The context (``n_ctx`` per slot), the number of slots and the default temperature (the
server's ``--temp``) come from ``GET /props``;
``POST /tokenize`` proves the vocabulary is harmony's. Prefix reuse across turns needs
the server started with ``--swa-full`` (gpt-oss has sliding-window layers).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from model_runner.engines.remote import (
    VOCABULARY_PROBE,
    RemoteGenerator,
    raise_for_answer,
    sse_data,
    sync_json,
)
from model_runner.generator import GenerationRequest, GenerationUsage
from model_runner.harmony import load_encoding


class LlamaCppGenerator(RemoteGenerator):
    engine = "llama.cpp server"

    def _probe(self, client: httpx.Client) -> None:
        props = sync_json(client.get("/props"))
        settings = props.get("default_generation_settings") or {}
        if settings.get("n_ctx"):
            self.max_context = int(settings["n_ctx"])
        # The server's --temp: a request that names no temperature gets it.
        self.adopt_temperature((settings.get("params") or {}).get("temperature"))
        if props.get("total_slots"):
            self.concurrency = int(props["total_slots"])
        models = sync_json(client.get("/v1/models"))
        data = models.get("data") if isinstance(models, dict) else None
        if data and isinstance(data[0], dict):
            self.adopt_name(str(data[0].get("id", "")).rsplit("/", 1)[-1])
        tokenized = sync_json(
            client.post(
                "/tokenize",
                json={"content": VOCABULARY_PROBE, "add_special": False, "parse_special": True},
            )
        )
        self.check_vocabulary([int(t) for t in tokenized.get("tokens", [])])

    def body(self, request: GenerationRequest, max_tokens: int) -> dict[str, Any]:
        return {
            "prompt": list(request.prompt_tokens),
            "n_predict": max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            # llama.cpp's other samplers default to on; a request means only these two.
            "top_k": 0,
            "min_p": 0.0,
            "seed": request.seed if request.seed is not None else -1,
            "stream": True,
            "return_tokens": True,
            "timings_per_token": True,
            "cache_prompt": True,
        }

    async def _stream(
        self, request: GenerationRequest, max_tokens: int, usage: GenerationUsage
    ) -> AsyncIterator[int]:
        produced = 0
        body = self.body(request, max_tokens)
        async with self._http().stream("POST", "/completion", json=body) as response:
            await raise_for_answer(self, response)
            async for data in sse_data(response):
                chunk = json.loads(data)
                if "error" in chunk:
                    error = chunk["error"]
                    code = error.get("code") if isinstance(error, dict) else 500
                    raise self.error_of(int(code or 500), chunk, "error")
                timings = chunk.get("timings")
                if isinstance(timings, dict) and "cache_n" in timings and produced == 0:
                    usage.cached_tokens = int(timings["cache_n"])
                if chunk.get("stop"):
                    return
                ids = [int(t) for t in chunk.get("tokens") or []]
                predicted = chunk.get("tokens_predicted")
                if isinstance(predicted, int) and predicted > produced + len(ids):
                    # Ids held back inside a UTF-8 character: take the chunk's text.
                    ids = list(
                        load_encoding().encode(chunk.get("content", ""), disallowed_special=())
                    )
                for token in ids:
                    yield token
                    if token in request.stop_tokens:
                        return
                produced = max(produced + len(ids), predicted if isinstance(predicted, int) else 0)
        raise self.cut_short()
