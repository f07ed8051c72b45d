"""``SGLangGenerator``: gpt-oss served by SGLang.

Targets SGLang 0.5.6 and later, run without ``--incremental-streaming-output``:
``POST /generate`` with ``input_ids``, streamed; each chunk's ``output_ids`` are all the
ids generated so far, so the new ones are those past what was already seen (SGLang
0.5.5 and earlier streamed deltas and could drop chunks: not supported). ``meta_info``
reports ``cached_tokens`` with no server flag. SGLang refuses unknown sampling keys, so
only the ones it knows are sent (no seed: SGLang uses one only in deterministic mode).

The model's name and context come from ``GET /v1/models``; ``POST /tokenize`` (0.5.5
and later) proves the vocabulary is harmony's.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from model_runner.engines.remote import (
    VOCABULARY_PROBE,
    RemoteGenerator,
    first_model,
    raise_for_answer,
    sse_data,
    sync_json,
)
from model_runner.generator import GenerationRequest, GenerationUsage


class SGLangGenerator(RemoteGenerator):
    engine = "SGLang server"

    def _probe(self, client: httpx.Client) -> None:
        model = first_model(sync_json(client.get("/v1/models")))
        self.adopt_name(model.get("id"))
        if model.get("max_model_len"):
            self.max_context = int(model["max_model_len"])
        tokenized = sync_json(
            client.post("/tokenize", json={"prompt": VOCABULARY_PROBE, "add_special_tokens": False})
        )
        self.check_vocabulary([int(t) for t in tokenized.get("tokens", [])])

    def body(self, request: GenerationRequest, max_tokens: int) -> dict[str, Any]:
        return {
            "input_ids": list(request.prompt_tokens),
            "sampling_params": {
                "max_new_tokens": max_tokens,
                "temperature": request.temperature,
                "top_p": request.top_p,
                "stop_token_ids": sorted(request.stop_tokens),
                "skip_special_tokens": False,
            },
            "stream": True,
        }

    async def _stream(
        self, request: GenerationRequest, max_tokens: int, usage: GenerationUsage
    ) -> AsyncIterator[int]:
        seen = 0
        async with self._http().stream(
            "POST", "/generate", json=self.body(request, max_tokens)
        ) as response:
            await raise_for_answer(self, response)
            async for data in sse_data(response):
                if data == "[DONE]":
                    return
                chunk = json.loads(data)
                if "error" in chunk:
                    error = chunk["error"]
                    code = error.get("code") if isinstance(error, dict) else 400
                    raise self.error_of(int(code or 400), chunk, "error")
                meta = chunk.get("meta_info") or {}
                usage.prompt_tokens = int(meta.get("prompt_tokens") or usage.prompt_tokens)
                usage.cached_tokens = int(meta.get("cached_tokens") or 0)
                ids = chunk.get("output_ids") or []
                for token in ids[seen:]:
                    yield int(token)
                seen = max(seen, len(ids))
        raise self.cut_short()
