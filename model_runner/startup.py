"""What a long-lived server process does once it has started and before it serves, so
that no user's request pays for it: build the wire types its first response would
build (``build_deferred_models``), run the model's first forward pass (``warm_up``),
then put what start-up left out of the garbage collector's way
(``freeze_startup_objects``).

On the last: such a process holds a few hundred thousand objects from its imports and
set-up (the model's process about 350,000: torch, transformers, the model). CPython's
full collections walk every one of them, stopping the process for 95 to 140 ms here,
now and then while it serves (seen with ``gc.callbacks`` under
``bench/model_concurrency.py``: the service's process once in each run,
mid-measurement). ``gc.freeze()`` moves them out of the collector's sight, so later
collections walk only what was made since. Frozen objects are still freed when their
last reference goes; only a cycle among them that becomes garbage later is kept.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence
from types import ModuleType

import pydantic

from model_runner.generator import GenerationRequest, Generator
from model_runner.harmony import load_encoding

#: What a warm-up's user says, in the model's process and in the service's.
WARM_UP_MESSAGE = "Hi"
#: What ``warm_up`` generates from: the user's word and the assistant's header. The
#: service's warm-up prompt ends the same way, after its system message.
WARM_UP_PROMPT = f"<|start|>user<|message|>{WARM_UP_MESSAGE}<|end|><|start|>assistant"


def freeze_startup_objects() -> None:
    """Collect what start-up left, then freeze what is alive."""
    gc.collect()
    gc.freeze()


def build_deferred_models(*modules: ModuleType) -> int:
    """Build now the schemas of the pydantic models that ``modules`` name.

    The ``openai`` SDK's types defer theirs to first use (``defer_build``), and building
    one takes a while: 14 ms for the stream event that announces a new output item,
    28 ms for ``Response``. Left to first use, they make a server's first response
    about a tenth of a second slower than its later ones. Returns how many were built.
    """
    built = 0
    for module in modules:
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, pydantic.BaseModel)
                and value is not pydantic.BaseModel
                and not value.__pydantic_complete__
            ):
                value.model_rebuild()
                built += 1
    return built


def warm_up(generator: Generator) -> None:
    """Generate one token before serving, on a model in this process.

    A model's first forward pass pays for set-up that later ones do not: the demo model's
    first token comes 14 ms later than the next request's on the CPU, and on a GPU the
    first pass also loads kernels and allocates workspaces. Done here, that lands on no
    user's request. Blocks; call it where no event loop is running.
    """
    prompt = load_encoding().encode(WARM_UP_PROMPT, allowed_special="all")
    asyncio.run(generate_one_token(generator, prompt))


async def generate_one_token(generator: Generator, prompt: Sequence[int]) -> None:
    """One greedy token of ``prompt``, read and dropped; the generator's errors pass."""
    stream = generator.generate(
        GenerationRequest(
            prompt_tokens=list(prompt),
            max_tokens=1,
            stop_tokens=frozenset(),
            temperature=0.0,
        )
    )
    try:
        async for _ in stream:
            pass
    finally:
        await stream.aclose()
