"""A ``Generator`` running a gpt-oss model with transformers, in this process.

Generation runs in a worker thread (torch releases the GIL inside its kernels) and
hands tokens to the event loop through an ``asyncio.Queue``, so the service's loop keeps
serving other requests while the model decodes. One generation runs at a time per
model; a stream closed early (the client went away) sets a flag the worker checks
before every forward pass.

Prefix caching (``model_runner.prefix_cache``) keeps the keys and values of recent
conversations, so a follow-up turn only prefills its new tokens. A vocabulary-subset
checkpoint's ``TokenMap`` is applied here, at the model's edges: callers always see
o200k_harmony ids.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model_runner.errors import (
    GenerationFailed,
    InvalidGenerationRequest,
    ModelRunnerError,
    ModelTooLarge,
)
from model_runner.generator import GenerationRequest, GenerationStream, GenerationUsage
from model_runner.prefix_cache import (
    CachedSequence,
    PrefixCache,
    common_prefix_length,
    new_rewindable_cache,
)
from model_runner.token_map import TokenMap

log = logging.getLogger(__name__)

#: o200k_harmony's size: the id range a full-vocabulary model accepts.
HARMONY_VOCAB_SIZE = 201088

#: Below this temperature sampling is greedy: dividing logits by ~0 only overflows.
GREEDY_BELOW_TEMPERATURE = 1e-5

DEFAULT_CACHE_BUDGET_BYTES = 2 * 1024**3

#: Prompt tokens per forward pass while prefilling. Bounds the attention scores
#: materialised at once (heads x chunk x context), which eager attention allocates.
DEFAULT_PREFILL_CHUNK_TOKENS = 2048

#: How often a request waiting for the model checks whether its client went away.
_LOCK_POLL_S = 0.05


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str | torch.device) -> torch.dtype:
    """bf16 on GPUs (what gpt-oss runs in); fp32 on CPU, where bf16 matmuls are slow."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


@dataclass
class GeneratorStats:
    """Running totals, for metrics and for tests that check what the worker did."""

    generations: int = 0
    cancelled: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class _Started:
    prompt_tokens: int
    cached_tokens: int


class _End:
    pass


_END = _End()

_Item = _Started | int | ModelRunnerError | _End


@dataclass
class _Job:
    request: GenerationRequest
    emit: Callable[[_Item], None]
    cancel: threading.Event


def sample_token(
    logits: torch.Tensor,
    temperature: float,
    top_p: float,
    generator: torch.Generator | None,
) -> int:
    """Pick the next id from one position's logits: greedy, or temperature + nucleus."""
    if temperature < GREEDY_BELOW_TEMPERATURE:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep the smallest set of most likely ids whose mass reaches top_p: an id goes
        # once the mass of the ids before it already does.
        sorted_probs[(torch.cumsum(sorted_probs, dim=-1) - sorted_probs) >= top_p] = 0.0
        choice = torch.multinomial(sorted_probs, 1, generator=generator)
        return int(order[choice])
    return int(torch.multinomial(probs, 1, generator=generator))


class TransformersGenerator:
    """A gpt-oss ``GptOssForCausalLM`` (or any causal LM) behind the ``Generator`` protocol.

    ``model`` is a loaded transformers model in eval mode; ``token_map`` is given for a
    vocabulary-subset checkpoint. ``cache_budget_bytes`` caps the prefix cache (0 turns
    it off). Build one with ``from_pretrained`` or ``from_random`` rather than by hand.
    """

    def __init__(
        self,
        model: Any,
        *,
        name: str,
        token_map: TokenMap | None = None,
        cache_budget_bytes: int = DEFAULT_CACHE_BUDGET_BYTES,
        prefill_chunk_tokens: int = DEFAULT_PREFILL_CHUNK_TOKENS,
    ) -> None:
        self.model = model.eval()
        self.name = name
        self.token_map = token_map
        self.config = model.config
        self.device: torch.device = next(model.parameters()).device
        self.max_context = int(getattr(self.config, "max_position_embeddings", 0) or 2**31)
        model_vocab = int(self.config.vocab_size)
        if token_map is not None and token_map.vocab_size > model_vocab:
            raise ValueError(
                f"token map has {token_map.vocab_size} ids, the model only {model_vocab}"
            )
        # Ids the model may produce: a subset model's embedding may be padded past its map.
        self._output_vocab = token_map.vocab_size if token_map is not None else model_vocab
        # Ids a caller may send: any harmony id when a map folds unknown ones.
        self._input_vocab = HARMONY_VOCAB_SIZE if token_map is not None else model_vocab
        self.prefix_cache = PrefixCache(cache_budget_bytes)
        self.prefill_chunk_tokens = prefill_chunk_tokens
        self.stats = GeneratorStats()
        self._lock = threading.Lock()

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path,
        *,
        name: str | None = None,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        **options: Any,
    ) -> TransformersGenerator:
        """Load a checkpoint: a local folder (with ``token_map.json`` if it is a
        vocabulary-subset model) or a hub id. ``HF_HUB_OFFLINE=1`` forbids downloads."""
        from transformers import AutoModelForCausalLM

        device = device or default_device()
        dtype = dtype or default_dtype(device)
        folder = Path(source)
        # Loading straight onto a GPU (``device_map``) needs ``accelerate``; without it
        # the weights pass through host memory first, which works, only slower.
        direct = torch.device(device).type != "cpu" and importlib.util.find_spec("accelerate")
        model: Any = AutoModelForCausalLM.from_pretrained(
            str(source),
            dtype=dtype,
            device_map=device if direct else None,
            local_files_only=hub_offline(),
        )
        model = model.to(device)
        if folder.is_dir():
            token_map = TokenMap.from_checkpoint(folder)
            default_name = folder.resolve().name
        else:  # a hub id such as openai/gpt-oss-20b
            token_map = None
            default_name = str(source).rsplit("/", 1)[-1]
        return cls(model, name=name or default_name, token_map=token_map, **options)

    @classmethod
    def from_random(
        cls,
        shape: str,
        *,
        name: str | None = None,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        seed: int = 0,
        config_overrides: dict[str, Any] | None = None,
        **options: Any,
    ) -> TransformersGenerator:
        """A model of a named shape (``model_runner.shapes``) with random weights, built
        directly on ``device`` in ``dtype``: never 20B fp32 parameters on the CPU first."""
        from transformers import AutoModelForCausalLM

        from model_runner.shapes import SHAPES, gpt_oss_config, parameter_count

        device = device or default_device()
        dtype = dtype or default_dtype(device)
        overrides = dict(config_overrides or {})
        token_map: TokenMap | None = options.get("token_map")
        if token_map is not None:
            # A subset model's ids are compact: size the vocabulary to the map and move
            # the config's special ids into it (or drop them if the map lacks them).
            overrides.setdefault("vocab_size", token_map.vocab_size)
            for field_name in ("eos_token_id", "pad_token_id"):
                original = SHAPES.get(shape, {}).get(field_name)
                compact = None
                if isinstance(original, int) and original in token_map:
                    compact = token_map.to_compact([original])[0]
                overrides.setdefault(field_name, compact)
        config = gpt_oss_config(shape, **overrides)
        if torch.device(device).type == "cuda":
            # Fail with a clear message rather than an out-of-memory error halfway.
            need = parameter_count(config) * dtype.itemsize
            free, _ = torch.cuda.mem_get_info(torch.device(device))
            if need > free:
                raise ModelTooLarge(
                    f"{shape} needs {need / 1024**3:.0f} GiB for its weights in {dtype}; "
                    f"{device} has {free / 1024**3:.0f} GiB free"
                )
        torch.manual_seed(seed)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        return cls(model, name=name or f"random:{shape}", **options)

    # -- Generator -------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether a generation holds the model right now."""
        return self._lock.locked()

    def generate(self, request: GenerationRequest) -> GenerationStream:
        """Stream completion ids for ``request``. Errors (``InvalidGenerationRequest``,
        ``GenerationFailed``) surface when the stream is first iterated."""
        usage = GenerationUsage()
        return GenerationStream(self._stream(request, usage), usage)

    async def _stream(
        self, request: GenerationRequest, usage: GenerationUsage
    ) -> AsyncIterator[int]:
        self._validate(request)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: _Item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                cancel.set()

        job = _Job(request, emit, cancel)
        # Not a daemon: interpreter shutdown must wait for a worker to leave torch, or
        # tearing torch down under a running thread aborts the process. A worker always
        # ends soon: its stream's end, or a closed loop, sets its cancel flag.
        threading.Thread(target=self._work, args=(job,), name="generate").start()
        try:
            while True:
                item = await queue.get()
                if isinstance(item, int):
                    yield item
                elif isinstance(item, _Started):
                    usage.prompt_tokens = item.prompt_tokens
                    usage.cached_tokens = item.cached_tokens
                elif isinstance(item, ModelRunnerError):
                    raise item
                else:
                    return
        finally:
            # Reached on normal end, on aclose() and on task cancellation alike; the
            # worker stops before its next forward pass.
            cancel.set()

    def _validate(self, request: GenerationRequest) -> None:
        prompt = request.prompt_tokens
        if not prompt:
            raise InvalidGenerationRequest("the prompt is empty")
        if request.max_tokens < 1:
            raise InvalidGenerationRequest("max_tokens must be at least 1")
        if len(prompt) >= self.max_context:
            raise InvalidGenerationRequest(
                f"the prompt has {len(prompt)} tokens; the model's context is {self.max_context}"
            )
        if min(prompt) < 0 or max(prompt) >= self._input_vocab:
            raise InvalidGenerationRequest(f"prompt ids must lie in [0, {self._input_vocab})")
        if request.temperature < 0:
            raise InvalidGenerationRequest("temperature must not be negative")
        if not 0.0 < request.top_p <= 1.0:
            raise InvalidGenerationRequest("top_p must lie in (0, 1]")

    # -- worker thread ---------------------------------------------------------------------

    def _work(self, job: _Job) -> None:
        try:
            # Poll rather than block, so a request whose client left while it queued
            # gives up its place without ever touching the model.
            while not self._lock.acquire(timeout=_LOCK_POLL_S):
                if job.cancel.is_set():
                    return
            try:
                with torch.inference_mode():
                    self._generate_locked(job)
            finally:
                self._lock.release()
        except ModelRunnerError as exc:
            self.stats.failed += 1
            job.emit(exc)
        except Exception as exc:
            self.stats.failed += 1
            log.exception("generation failed")
            if isinstance(exc, torch.OutOfMemoryError):
                # Cached conversations are the memory we can give back; the next
                # request then has a chance.
                self.prefix_cache.clear()
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
            job.emit(GenerationFailed(f"{type(exc).__name__}: {exc}"))
        finally:
            job.emit(_END)

    def _generate_locked(self, job: _Job) -> None:
        request = job.request
        prompt = self._to_model_ids(request.prompt_tokens)
        entry = self.prefix_cache.take(request.cache_key, prompt)
        if entry is None:
            entry = CachedSequence(new_rewindable_cache(self.config))
        # Recompute at least the prompt's last token: its logits give the first sample.
        reused = min(common_prefix_length(entry.tokens, prompt), len(prompt) - 1)
        entry.crop(reused)
        self.stats.generations += 1
        self.stats.prompt_tokens += len(prompt)
        self.stats.cached_tokens += reused
        job.emit(_Started(prompt_tokens=len(prompt), cached_tokens=reused))

        intact = False  # whether entry's cache matches entry.tokens, so it can be kept
        try:
            logits = self._prefill(entry, prompt[reused:], job.cancel)
            intact = True
            if logits is None:
                self.stats.cancelled += 1
                return
            generator = None
            if request.seed is not None:
                generator = torch.Generator(device=self.device).manual_seed(request.seed)
            stop_tokens = request.stop_tokens
            room = self.max_context - len(prompt)
            for step in range(min(request.max_tokens, room)):
                model_token = sample_token(
                    logits[: self._output_vocab], request.temperature, request.top_p, generator
                )
                token = self._to_caller_id(model_token)
                self.stats.completion_tokens += 1
                job.emit(token)
                if token in stop_tokens or step == min(request.max_tokens, room) - 1:
                    # The last token is not fed back: the next turn's prompt decides
                    # what follows it (harmony rewrites a final <|return|> as <|end|>).
                    break
                if job.cancel.is_set():
                    self.stats.cancelled += 1
                    break
                intact = False
                logits = self._forward(entry, [model_token])
                intact = True
        finally:
            # A forward pass that raised may have updated some layers and not others.
            if intact:
                self.prefix_cache.put(request.cache_key, entry)

    def _prefill(
        self, entry: CachedSequence, tokens: Sequence[int], cancel: threading.Event
    ) -> torch.Tensor | None:
        """Feed ``tokens`` in chunks; the logits after the last, or None if cancelled."""
        logits = None
        for start in range(0, len(tokens), self.prefill_chunk_tokens):
            if cancel.is_set():
                return None
            logits = self._forward(entry, tokens[start : start + self.prefill_chunk_tokens])
        assert logits is not None  # the prompt always leaves at least one token to feed
        return logits

    def _forward(self, entry: CachedSequence, tokens: Sequence[int]) -> torch.Tensor:
        input_ids = torch.tensor([list(tokens)], dtype=torch.long, device=self.device)
        output = self.model(
            input_ids=input_ids, cache=entry.cache, use_cache=True, logits_to_keep=1
        )
        entry.tokens.extend(tokens)
        logits: torch.Tensor = output.logits[0, -1]
        return logits

    def _to_model_ids(self, ids: Sequence[int]) -> list[int]:
        return self.token_map.to_compact(ids) if self.token_map is not None else list(ids)

    def _to_caller_id(self, model_id: int) -> int:
        return self.token_map.original_ids[model_id] if self.token_map is not None else model_id
