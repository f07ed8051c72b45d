"""``VLLMGenerator``: gpt-oss served by vLLM's OpenAI-compatible server.

Targets vLLM 0.10.2 and later: ``POST /v1/completions`` with the prompt as token ids
and ``return_token_ids``, streamed; each chunk's ``choices[0].token_ids`` are the new
ids (vLLM streams deltas). The usage chunk (``stream_options.include_usage``) gives
``prompt_tokens_details.cached_tokens`` when the server runs with
``--enable-prompt-tokens-details``; otherwise cached tokens read as 0. vLLM stops on the
model's own end tokens (for gpt-oss <|return|>, <|call|> and <|endoftext|>) as well as
the ``stop_token_ids`` sent, and includes the stop token in ``token_ids``.

The model's name and context come from ``GET /v1/models``; ``POST /tokenize`` proves the
vocabulary is harmony's.
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


class VLLMGenerator(RemoteGenerator):
    engine = "vLLM server"

    def _probe(self, client: httpx.Client) -> None:
        model = first_model(sync_json(client.get("/v1/models")))
        self.adopt_name(model.get("id"))
        if model.get("max_model_len"):
            self.max_context = int(model["max_model_len"])
        tokenized = sync_json(
            client.post(
                "/tokenize",
                json={"model": model.get("id"), "prompt": VOCABULARY_PROBE,
                      "add_special_tokens": False},
            )
        )  # fmt: skip
        self.check_vocabulary([int(t) for t in tokenized.get("tokens", [])])

    def body(self, request: GenerationRequest, max_tokens: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.name,
            "prompt": list(request.prompt_tokens),
            "max_tokens": max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stop_token_ids": sorted(request.stop_tokens),
            "skip_special_tokens": False,
            "return_token_ids": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.cache_key is not None:
            # Keeps conversations of different keys from sharing cached blocks, as a
            # prompt_cache_key separates them at OpenAI.
            body["cache_salt"] = request.cache_key
        return body

    async def _stream(
        self, request: GenerationRequest, max_tokens: int, usage: GenerationUsage
    ) -> AsyncIterator[int]:
        body = self.body(request, max_tokens)
        async with self._http().stream("POST", "/v1/completions", json=body) as response:
            await raise_for_answer(self, response)
            async for data in sse_data(response):
                if data == "[DONE]":
                    return
                chunk = json.loads(data)
                if "error" in chunk:
                    raise self.error_of(int(chunk["error"].get("code") or 500), chunk, "error")
                if chunk.get("usage"):
                    details = chunk["usage"].get("prompt_tokens_details") or {}
                    usage.prompt_tokens = int(chunk["usage"].get("prompt_tokens") or 0)
                    usage.cached_tokens = int(details.get("cached_tokens") or 0)
                for choice in chunk.get("choices") or []:
                    for token in choice.get("token_ids") or []:
                        yield int(token)
        raise self.cut_short()
