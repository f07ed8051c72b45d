"""A ``Generator`` running a gpt-oss model with transformers, in this process, batching
every generation in flight into shared forward passes (continuous batching).

One worker thread runs the model (torch releases the GIL inside its kernels) and hands
tokens to each request's event loop through an ``asyncio.Queue``, so the service keeps
serving while the model works. Each step of the worker:

- admits waiting requests into the batch, each into a key/value slot
  (``model_runner.kv_slots``) that may already hold its conversation's earlier turns;
- feeds every decoding request its last token and every prefilling one the next chunk of
  its prompt (at most ``prefill_chunk_tokens`` per step, so that a long prompt never
  stalls the others), in one *ragged* forward pass: the rows' tokens laid end to end,
  none padded (``model_runner.attention``);
- samples each request's next token, and drops requests that finished or whose stream
  was closed (the client went away) at once.

A request joins and leaves the batch at any step. Attention is the model's own eager
arithmetic (``model_runner.attention``: the same, without a copy of the keys per query
head) over each row's slot, with the causal and sliding-window masks spelled out per row,
so a request's greedy output is the same whether it runs alone or in a batch
(up to the last bits of float arithmetic, which differ between batch shapes in every
batching engine and could flip a near-tie).

transformers' own ``ContinuousBatchingManager`` was tried first: it streams, cancels and
batches, but its paged cache cannot share blocks of sliding-window layers, so on gpt-oss
it has no prefix cache, and a follow-up turn would prefill its whole conversation again.

A vocabulary-subset checkpoint's ``TokenMap`` is applied at the edges: callers always
see o200k_harmony ids.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import logging
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model_runner.attention import SERVING_ATTENTION, ragged_layout, row_groups
from model_runner.errors import (
    GenerationFailed,
    InvalidGenerationRequest,
    ModelMismatch,
    ModelRunnerError,
    ModelTooLarge,
)
from model_runner.generator import GenerationRequest, GenerationStream, GenerationUsage
from model_runner.kv_slots import Claim, SlotCache
from model_runner.token_map import TokenMap

log = logging.getLogger(__name__)

#: o200k_harmony's size: the id range a full-vocabulary model accepts.
HARMONY_VOCAB_SIZE = 201088

#: Below this temperature sampling is greedy: dividing logits by ~0 only overflows.
GREEDY_BELOW_TEMPERATURE = 1e-5

#: Memory for key/value slots on a CPU. On a GPU the default is half of what is free
#: once the weights are loaded.
DEFAULT_CPU_CACHE_BYTES = 512 * 1024**2
#: Slots beyond this would only hold conversations long gone.
MAX_SLOTS = 256

#: Prompt tokens fed per step. Bounds both the attention scores materialised at once
#: (heads x chunk x context) and how long one step keeps decoding requests waiting.
DEFAULT_PREFILL_CHUNK_TOKENS = 512

#: An interactive generation's first tokens (its prompt's new tokens, the harmony header
#: and the start of its message) run without the background generations in the batch:
#: they wait those few steps, so that a person's first token does not.
INTERACTIVE_HEAD_TOKENS = 12

#: Generations in one batch: on a CPU a step's cost grows with the rows past this.
DEFAULT_MAX_BATCH = {"cpu": 16, "cuda": 64}

#: The longest context a slot holds, when the model's own is longer (gpt-oss: 131,072):
#: every slot is allocated at this length up front (gpt-oss-20b in bf16: 400 MB a slot).
DEFAULT_CONTEXT_CAP = 8192


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str | torch.device) -> torch.dtype:
    """bf16 on GPUs (what gpt-oss runs in); fp32 on CPU, where bf16 matmuls are slow."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def default_cache_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return DEFAULT_CPU_CACHE_BYTES


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
    steps: int = 0
    #: The most requests that shared one decode forward pass.
    widest_batch: int = 0


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
    """One generation in the worker: its request, and how far it has got."""

    request: GenerationRequest
    prompt: list[int]  # model ids
    outbox: _Outbox
    queue: asyncio.Queue[_Item]
    cancel: threading.Event
    loop: asyncio.AbstractEventLoop
    claim: Claim | None = None
    fed: int = 0  # prompt tokens in the slot so far
    generated: int = 0
    pending: int | None = None  # the last sampled token (model id), fed at the next step
    limit: int = 0  # tokens this job may generate
    sampler: torch.Generator | None = None

    @property
    def prefilling(self) -> bool:
        return self.fed < len(self.prompt)

    def emit(self, item: _Item) -> None:
        self.outbox.put(self, item)


def _slot_index(feed: tuple[_Job, list[int]]) -> int:
    job = feed[0]
    assert job.claim is not None
    return job.claim.slot.index


class _Outbox:
    """Items for the event loops of the jobs, sent once per step: one wake-up of each loop
    rather than one per token of every job in the batch."""

    def __init__(self) -> None:
        self._items: dict[asyncio.AbstractEventLoop, list[tuple[_Job, _Item]]] = {}

    def put(self, job: _Job, item: _Item) -> None:
        self._items.setdefault(job.loop, []).append((job, item))

    def flush(self) -> None:
        items, self._items = self._items, {}
        for loop, batch in items.items():
            try:
                loop.call_soon_threadsafe(_deliver, batch)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                for job, _ in batch:
                    job.cancel.set()


def _deliver(batch: list[tuple[_Job, _Item]]) -> None:
    for job, item in batch:
        job.queue.put_nowait(item)


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


class _StepCache:
    """What the model sees as its cache during one ragged forward pass.

    ``update`` writes the pass's new keys and values into the slots, token ``t`` at
    slot ``rows[t]``, position ``positions[t]``, and hands attention the slots from the
    pass's first row to its last as one view (the runner packs its busy slots to the
    front, so they are few and consecutive): everything up to the newest token, from the
    first key the layer type reads. Which row sees which keys is the layouts' business.
    """

    def __init__(
        self, slots: SlotCache, rows: list[int], positions: list[int], spans: dict[str, int]
    ) -> None:
        self.slots = slots
        self.rows = torch.tensor(rows, device=slots.keys[0].device)  # (tokens,) slot indices
        self.positions = torch.tensor(positions, device=slots.keys[0].device)
        self.spans = spans  # layer type -> first key position attention reads
        self.end = max(positions) + 1
        self.first_row, self.after_row = min(rows), max(rows) + 1
        # One row's tokens (a chunk of its prompt) are a contiguous run of positions,
        # written as a view.
        self.run = (rows[0], positions[0]) if self.after_row - self.first_row == 1 else None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        keys, values = self.slots.keys[layer_idx], self.slots.values[layer_idx]
        if self.run is not None:
            row, first = self.run
            count = key_states.shape[-2]
            keys[row, :, first : first + count] = key_states[0]
            values[row, :, first : first + count] = value_states[0]
        else:
            keys[self.rows, :, self.positions] = key_states[0].transpose(0, 1)
            values[self.rows, :, self.positions] = value_states[0].transpose(0, 1)
        start = self.spans[self.slots.layer_types[layer_idx]]
        return (
            keys[self.first_row : self.after_row, :, start : self.end],
            values[self.first_row : self.after_row, :, start : self.end],
        )


class TransformersGenerator:
    """A gpt-oss ``GptOssForCausalLM`` behind the ``Generator`` protocol, batching
    concurrent generations (another architecture raises ``ModelMismatch``).

    ``model`` is a loaded transformers model; ``token_map`` is given for a vocabulary-
    subset checkpoint. ``max_batch`` is how many generations may share a step;
    ``cache_budget_bytes`` sizes the key/value slots, one per generation in flight or
    conversation kept (fewer slots than ``max_batch`` narrow the batch; 0 keeps no
    conversation between generations); ``context_length`` caps the tokens a slot holds.
    ``cpu_threads`` sets torch's intra-op threads, for the whole process, on a CPU.
    The generator's ``concurrency`` is what the slots allow of ``max_batch``. Build one
    with ``from_pretrained`` or ``from_random`` rather than by hand.
    """

    def __init__(
        self,
        model: Any,
        *,
        name: str,
        token_map: TokenMap | None = None,
        cache_budget_bytes: int | None = None,
        prefill_chunk_tokens: int = DEFAULT_PREFILL_CHUNK_TOKENS,
        max_batch: int | None = None,
        context_length: int | None = None,
        default_temperature: float = 1.0,
        cpu_threads: int | None = None,
    ) -> None:
        self.model = model.eval()
        self.name = name
        self.token_map = token_map
        self.config = model.config
        model_type = getattr(self.config, "model_type", None)
        if model_type != "gpt_oss":
            # The runner's attention is gpt-oss's (sinks, sliding windows); another
            # architecture's extras (Gemma's logit soft-capping, say) it would drop.
            raise ModelMismatch(
                f"the batching runner serves gpt-oss models (GptOssForCausalLM); this is "
                f"a {model_type!r} model"
            )
        if prefill_chunk_tokens < 1:
            raise ValueError("prefill_chunk_tokens must be at least 1")
        # The runner's passes are ragged (model_runner.attention): only its own
        # attention, eager's arithmetic without a copy of the keys per query head, reads
        # them.
        if self.config._attn_implementation not in ("eager", SERVING_ATTENTION):
            log.warning(
                "attention %r replaced by the runner's own (eager's arithmetic)",
                self.config._attn_implementation,
            )
        self.config._attn_implementation = SERVING_ATTENTION
        self.device: torch.device = next(model.parameters()).device
        self.dtype: torch.dtype = next(model.parameters()).dtype
        self.default_temperature = default_temperature
        if cpu_threads and self.device.type == "cpu":
            torch.set_num_threads(cpu_threads)
        model_context = int(
            getattr(self.config, "max_position_embeddings", 0) or DEFAULT_CONTEXT_CAP
        )
        self.max_context = min(model_context, context_length or DEFAULT_CONTEXT_CAP)
        max_batch = max_batch or DEFAULT_MAX_BATCH.get(self.device.type, 16)
        model_vocab = int(self.config.vocab_size)
        if token_map is not None and token_map.vocab_size > model_vocab:
            raise ValueError(
                f"token map has {token_map.vocab_size} ids, the model only {model_vocab}"
            )
        # Ids the model may produce: a subset model's embedding may be padded past its map.
        self._output_vocab = token_map.vocab_size if token_map is not None else model_vocab
        # Ids a caller may send: any harmony id when a map folds unknown ones.
        self._input_vocab = HARMONY_VOCAB_SIZE if token_map is not None else model_vocab
        per_slot = SlotCache.bytes_per_slot(self.config, self.max_context, self.dtype)
        if cache_budget_bytes is None:
            cache_budget_bytes = default_cache_budget(self.device)
        if cache_budget_bytes == 0:
            num_slots = max_batch
        else:
            num_slots = min(max(1, cache_budget_bytes // per_slot), MAX_SLOTS)
            if num_slots < max_batch:
                log.warning(
                    "key/value memory for %d slots of %d tokens: batches narrowed from %d",
                    num_slots, self.max_context, max_batch,
                )  # fmt: skip
        self.concurrency = min(max_batch, num_slots)
        self.slots = SlotCache(
            self.config,
            num_slots=num_slots,
            length=self.max_context,
            device=self.device,
            dtype=self.dtype,
            reuse=cache_budget_bytes > 0,
        )
        self.prefill_chunk_tokens = prefill_chunk_tokens
        self.stats = GeneratorStats()
        self._decoder = model.get_decoder()
        self._head = model.get_output_embeddings()
        self._lock = threading.Lock()  # guards the queue and the worker's existence
        self._waiting: deque[_Job] = deque()
        self._outbox = _Outbox()
        self._active: list[_Job] = []
        self._worker: threading.Thread | None = None
        self._wake = threading.Event()

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
        """Whether any generation is queued or running."""
        with self._lock:
            return self._worker is not None

    def generate(self, request: GenerationRequest) -> GenerationStream:
        """Stream completion ids for ``request``. Errors (``InvalidGenerationRequest``,
        ``GenerationFailed``) surface when the stream is first iterated."""
        usage = GenerationUsage()
        return GenerationStream(self._stream(request, usage), usage)

    async def _stream(
        self, request: GenerationRequest, usage: GenerationUsage
    ) -> AsyncIterator[int]:
        self._validate(request)
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        cancel = threading.Event()
        job = _Job(
            request,
            self._to_model_ids(request.prompt_tokens),
            self._outbox,
            queue,
            cancel,
            loop=asyncio.get_running_loop(),
        )
        self._submit(job)
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
            # Reached on normal end, on aclose() and on task cancellation alike: the
            # worker drops the job at its next step.
            cancel.set()
            self._wake.set()

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

    def _submit(self, job: _Job) -> None:
        with self._lock:
            self._waiting.append(job)
            if self._worker is None:
                # Not a daemon: interpreter shutdown must wait for the worker to leave
                # torch, or tearing torch down under it aborts the process. It ends by
                # itself once nothing is queued or running.
                self._worker = threading.Thread(target=self._work, name="generate")
                self._worker.start()
        self._wake.set()

    # -- worker thread ---------------------------------------------------------------------

    def _work(self) -> None:
        try:
            with torch.inference_mode():
                while self._step():
                    pass
        finally:
            with self._lock:
                self._worker = None
                leftover = bool(self._waiting)
            if leftover:  # arrived as the worker was leaving
                with self._lock:
                    if self._worker is None and self._waiting:
                        self._worker = threading.Thread(target=self._work, name="generate")
                        self._worker.start()

    def _step(self) -> bool:
        """One step of the batch; False when there is nothing left to do."""
        try:
            return self._step_once()
        finally:
            self._outbox.flush()

    def _step_once(self) -> bool:
        self._admit()
        self._drop_cancelled()
        if not self._active:
            with self._lock:
                if not self._waiting:
                    return False
            # Every slot is busy and nobody is active: cannot happen, but never spin.
            self._wake.wait(0.05)
            self._wake.clear()
            return True
        self.slots.pack([job.claim.slot for job in self._active if job.claim is not None])
        feeds: list[tuple[_Job, list[int]]] = []
        stepping = self._stepping()
        for job in stepping:
            if job.pending is not None:
                feeds.append((job, [job.pending]))
        budget = self.prefill_chunk_tokens
        for job in stepping:
            if job.pending is not None or not job.prefilling or budget <= 0:
                continue
            chunk = min(budget, len(job.prompt) - job.fed)
            budget -= chunk
            feeds.append((job, job.prompt[job.fed : job.fed + chunk]))
        try:
            self.stats.steps += 1
            decoding = sum(1 for job, _ in feeds if job.pending is not None)
            self.stats.widest_batch = max(self.stats.widest_batch, decoding)
            feeds.sort(key=_slot_index)
            logits = self._feed(feeds)
            greedy = logits[:, : self._output_vocab].argmax(dim=-1).tolist()
            for (job, _), row, best in zip(feeds, logits, greedy, strict=True):
                if not job.prefilling:
                    self._advance(job, row, best)
        except Exception as exc:
            self._fail_all(exc)
        return True

    def _stepping(self) -> list[_Job]:
        """The jobs this step feeds: all, unless an interactive one is starting (then
        the background ones sit the step out; their outputs do not change, only when)."""
        starting = any(
            not job.request.background and job.generated < INTERACTIVE_HEAD_TOKENS
            for job in self._active
        )
        if not starting:
            return self._active
        return [job for job in self._active if not job.request.background]

    def _admit(self) -> None:
        while len(self._active) < self.concurrency:
            with self._lock:
                if not self._waiting:
                    return
                job = self._waiting[0]
                if job.cancel.is_set():
                    self._waiting.popleft()
                    self.stats.cancelled += 1
                    job.emit(_END)
                    continue
            claim = self.slots.claim(job.request.cache_key, job.prompt)
            if claim is None:
                return
            with self._lock:
                self._waiting.popleft()
            job.claim = claim
            job.fed = claim.reused
            job.limit = min(job.request.max_tokens, self.max_context - len(job.prompt))
            if job.request.seed is not None:
                job.sampler = torch.Generator(device=self.device).manual_seed(job.request.seed)
            self.stats.generations += 1
            self.stats.prompt_tokens += len(job.prompt)
            self.stats.cached_tokens += claim.reused
            job.emit(_Started(prompt_tokens=len(job.prompt), cached_tokens=claim.reused))
            self._active.append(job)

    def _drop_cancelled(self) -> None:
        for job in [job for job in self._active if job.cancel.is_set()]:
            self.stats.cancelled += 1
            self._finish(job)

    def _finish(self, job: _Job) -> None:
        self._active.remove(job)
        if job.claim is not None:
            self.slots.release(job.claim.slot)
        job.emit(_END)

    def _fail_all(self, exc: Exception) -> None:
        log.exception("generation failed")
        if isinstance(exc, torch.OutOfMemoryError):
            # Cached conversations are the memory we can give back; the next
            # requests then have a chance.
            self.slots.forget()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        error = (
            exc
            if isinstance(exc, ModelRunnerError)
            else GenerationFailed(f"{type(exc).__name__}: {exc}")
        )
        for job in list(self._active):
            self.stats.failed += 1
            job.emit(error)
            self._finish(job)

    def _advance(self, job: _Job, logits: torch.Tensor, greedy: int | None = None) -> None:
        """Sample the job's next token from its logits and send it on; ``greedy`` is the
        argmax of those logits, when already known."""
        request = job.request
        if greedy is not None and request.temperature < GREEDY_BELOW_TEMPERATURE:
            model_token = greedy
        else:
            model_token = sample_token(
                logits[: self._output_vocab], request.temperature, request.top_p, job.sampler
            )
        token = self._to_caller_id(model_token)
        job.generated += 1
        self.stats.completion_tokens += 1
        job.emit(token)
        if token in request.stop_tokens or job.generated >= job.limit:
            # The last token is not fed back: the next turn's prompt decides what
            # follows it (harmony rewrites a final <|return|> as <|end|>).
            self._finish(job)
        else:
            job.pending = model_token

    # -- forward passes --------------------------------------------------------------------

    def _feed(self, feeds: list[tuple[_Job, list[int]]]) -> torch.Tensor:
        """One ragged forward pass feeding each job its tokens (a decoding job its last
        sampled token, a prefilling one a chunk of its prompt), in slot order; the
        logits after each job's last token."""
        rows, starts, lengths = [], [], []
        for job, tokens in feeds:
            assert job.claim is not None
            rows.append(job.claim.slot.index)
            starts.append(len(job.claim.slot.tokens))
            lengths.append(len(tokens))
        flat = [token for _, tokens in feeds for token in tokens]
        logits = self._forward(rows, flat, starts, lengths)
        for job, tokens in feeds:
            assert job.claim is not None
            job.claim.slot.tokens.extend(tokens)
            if job.pending is not None:
                job.pending = None
            else:
                job.fed += len(tokens)
        return logits

    def _forward(
        self, rows: list[int], tokens: list[int], starts: list[int], lengths: list[int]
    ) -> torch.Tensor:
        """One ragged forward pass: ``lengths[i]`` of ``tokens`` (laid out row after row)
        from position ``starts[i]`` into slot ``rows[i]``. Returns the logits after each
        row's last token."""
        window = self.slots.sliding_window
        spans = {"full_attention": 0, "sliding_attention": 0}
        if window is not None:
            # Keys older than every row's window are never read.
            spans["sliding_attention"] = max(0, min(starts) - window + 1)
        first_row = min(rows)
        groups = row_groups([row - first_row for row in rows], starts, lengths, self.device)
        layouts = {
            "full_attention": ragged_layout(groups, 0, None, self.dtype),
            "sliding_attention": ragged_layout(
                groups, spans["sliding_attention"], window, self.dtype
            ),
        }
        token_rows = [row for row, length in zip(rows, lengths, strict=True) for _ in range(length)]
        positions = [
            p for start, length in zip(starts, lengths, strict=True)
            for p in range(start, start + length)
        ]  # fmt: skip
        cache = _StepCache(self.slots, token_rows, positions, spans)
        hidden = self._decoder(
            input_ids=torch.tensor([tokens], device=self.device),
            position_ids=cache.positions.unsqueeze(0),
            attention_mask=layouts,
            cache=cache,
            use_cache=True,
        ).last_hidden_state
        if len(tokens) == len(rows):  # one token a row: a decoding step
            logits: torch.Tensor = self._head(hidden[0])
        else:
            logits = self._head(hidden[0, [n - 1 for n in itertools.accumulate(lengths)]])
        return logits.float()

    def _to_model_ids(self, ids: Sequence[int]) -> list[int]:
        return self.token_map.to_compact(ids) if self.token_map is not None else list(ids)

    def _to_caller_id(self, model_id: int) -> int:
        return self.token_map.original_ids[model_id] if self.token_map is not None else model_id
